import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fsyncDir, streamToFileAtomic, tempPathFor } from '../cas/atomic.js';
import { openFile, type StoredBlob } from '../cas/blob-store.js';
import type { CopyThreads, Piece } from '../cas/copy-plan.js';
import { digestHex, sha256 } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { END_OF_ARCHIVE, encodeHeader, padding, type NewEntry } from '../tar/writer.js';
import type { FileSpot, ImageReader, ImageWriter, OpenOptions } from './image.js';
import { parseJson } from './json.js';
import { LayoutImageWriter, OciLayout } from './layout.js';
import { Annotation } from './media-types.js';
import { checkDescriptor, resolveImage, ResolvedImageReader, type ResolvedImage } from './resolve.js';
import { indexTarFile, openMember, readMember, requireFile, type TarIndex } from './tar-index.js';
import type { Descriptor, ImageIndex } from './types.js';
import { CHUNK } from '../chunk.js';

/** A verified stream of member `name`, which must hold exactly the blob `desc`. */
export function openBlobMember(index: TarIndex, name: string, desc: Descriptor): Readable {
  const m = requireFile(index, name);
  if (m.size !== desc.size) {
    throw new BlockportError('EDIGEST', `${index.file}: member ${m.name} has ${m.size} bytes, ${desc.digest} has ${desc.size}`, { subject: desc.digest });
  }
  const raw = openMember(index.file, m);
  const verified = new VerifyingStream(desc.digest, desc.size, `${index.file}: ${m.name}`);
  raw.on('error', (err) => verified.destroy(err));
  verified.on('close', () => raw.destroy());
  return raw.pipe(verified);
}

/** A small blob member read whole and verified. */
export async function readBlobMember(index: TarIndex, name: string, desc: Descriptor): Promise<Buffer> {
  const m = requireFile(index, name);
  const bytes = await readMember(index.file, m);
  if (bytes.length !== desc.size || sha256(bytes) !== desc.digest) {
    throw new BlockportError('EDIGEST', `${index.file}: member ${m.name} does not match ${desc.digest}`, { subject: desc.digest });
  }
  return bytes;
}

/** An image read in place from a tar file; `memberOf` names the member holding a blob. */
export class ArchiveImageReader extends ResolvedImageReader {
  constructor(
    ref: string,
    readonly archive: TarIndex,
    resolved: ResolvedImage,
    private readonly memberOf: (desc: Descriptor) => string,
  ) {
    super(ref, resolved);
  }

  protected async openStored(desc: Descriptor): Promise<Readable> {
    return openBlobMember(this.archive, this.memberOf(desc), desc);
  }

  /** A blob's bytes are its member's data, at a known offset of the archive file. */
  async locate(desc: Descriptor): Promise<FileSpot | undefined> {
    let name: string;
    try {
      name = this.memberOf(desc);
    } catch {
      return undefined;
    }
    const m = this.archive.members.get(name);
    return m && m.type === 'file' && m.size === desc.size ? { path: this.archive.file, offset: m.offset, size: m.size, blobFile: false } : undefined;
  }
}

/** Where an OCI layout keeps a blob. */
export function layoutBlobPath(desc: Descriptor): string {
  return `blobs/sha256/${digestHex(desc.digest)}`;
}

/** The `index.json` of an OCI layout inside a tar, checked. */
export async function readArchiveIndex(index: TarIndex): Promise<ImageIndex> {
  if (!index.members.has('index.json')) {
    throw new BlockportError('ENOTFOUND', `${index.file}: not an OCI archive (no index.json)`, { subject: index.file });
  }
  const where = `${index.file}: index.json`;
  const idx = parseJson<ImageIndex>(await readMember(index.file, requireFile(index, 'index.json')), where);
  if (!idx || !Array.isArray(idx.manifests)) throw new BlockportError('ECORRUPT', `${where}: no manifests array`);
  idx.manifests.forEach((m, i) => checkDescriptor(m, `${where}: manifests[${i}]`));
  return idx;
}

/** The descriptor tagged `tag`; without a tag, the only one there is. */
function findTagged(idx: ImageIndex, tag: string | undefined, file: string): Descriptor {
  if (tag === undefined) {
    if (idx.manifests.length === 1) return idx.manifests[0];
    throw new BlockportError('EUSAGE', `${file}: holds ${idx.manifests.length} images; name one with :TAG`);
  }
  const d = idx.manifests.find((m) => m.annotations?.[Annotation.refName] === tag);
  if (!d) throw new BlockportError('ENOTFOUND', `${file}: no image tagged ${tag}`, { subject: tag });
  return d;
}

/** Opens the image tagged `tag` in an oci-archive (an OCI layout in a tar) without extracting it. */
export async function openOciArchive(file: string, tag: string | undefined, ref: string, opts: OpenOptions = {}): Promise<ImageReader> {
  const index = await indexTarFile(file);
  const top = findTagged(await readArchiveIndex(index), tag, file);
  const resolved = await resolveImage(top, (d) => readBlobMember(index, layoutBlobPath(d), d), ref, opts.platform);
  return new ArchiveImageReader(ref, index, resolved, layoutBlobPath);
}

/** Header fields of every entry blockport writes into an archive: owned by root, epoch mtime. */
function entry(path: string, type: 'file' | 'dir', size = 0): Buffer {
  const e: NewEntry = { path, type, size, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 0 };
  return encodeHeader(e);
}

/** Streams an OCI layout folder as a tar: oci-layout, index.json, then blobs in name order. */
export function layoutTarStream(layout: OciLayout): Readable {
  async function* generate(): AsyncGenerator<Buffer> {
    yield* fileEntry(join(layout.root, 'oci-layout'), 'oci-layout');
    yield* fileEntry(join(layout.root, 'index.json'), 'index.json');
    yield entry('blobs', 'dir');
    yield entry('blobs/sha256', 'dir');
    const digests = [];
    for await (const d of layout.blobs.list()) digests.push(d);
    for (const d of digests.sort()) yield* fileEntry(layout.blobs.path(d), `blobs/sha256/${digestHex(d)}`);
    yield END_OF_ARCHIVE;
  }
  return Readable.from(generate(), { objectMode: false, highWaterMark: CHUNK });
}

/** One file as a tar entry; a file that changes size while being read fails the archive. */
async function* fileEntry(path: string, name: string): AsyncGenerator<Buffer> {
  const size = (await fsp.stat(path)).size;
  yield entry(name, 'file', size);
  let n = 0;
  for await (const chunk of openFile(path)) {
    n += chunk.length;
    if (n > size) break;
    yield chunk;
  }
  if (n !== size) throw new BlockportError('EIO', `${path}: changed size while being archived`, { subject: path });
  yield padding(size);
}

/**
 * Writes an image into an oci-archive file. Blobs go into an OCI layout in a temp folder beside
 * the file; `commit` tags the image and replaces the file atomically with the layout's tar. Like
 * skopeo, it replaces the whole file: images under other tags in an existing archive are dropped.
 */
export class OciArchiveWriter implements ImageWriter {
  private readonly layout: OciLayout;
  private readonly inner: LayoutImageWriter;
  private ready?: Promise<void>;

  constructor(
    readonly file: string,
    readonly tag: string | undefined,
    readonly ref: string,
  ) {
    this.layout = new OciLayout(tempPathFor(file));
    this.inner = new LayoutImageWriter(ref, this.layout, tag);
  }

  private init(): Promise<void> {
    this.ready ??= this.layout.init();
    return this.ready;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    await this.init();
    return this.inner.hasBlob(desc);
  }

  async putBlob(source: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    await this.init();
    return this.inner.putBlob(source, expected);
  }

  async putPlan(plan: AsyncIterable<Piece>, threads: CopyThreads, expected?: StoredBlob): Promise<StoredBlob> {
    await this.init();
    return this.inner.putPlan(plan, threads, expected);
  }

  async copyBlob(from: ImageReader, desc: Descriptor): Promise<void> {
    await this.init();
    return this.inner.copyBlob(from, desc);
  }

  async commit(top: Descriptor): Promise<void> {
    await this.init();
    await this.inner.commit(top);
    await streamToFileAtomic(this.file, layoutTarStream(this.layout), [], async (tmp) => {
      await fsp.rename(tmp, this.file);
      await fsyncDir(dirname(this.file));
    });
    await this.abort();
  }

  async abort(): Promise<void> {
    try {
      await fsp.rm(this.layout.root, { recursive: true, force: true });
    } catch (err) {
      throw fromSystemError(err, this.layout.root);
    }
  }
}
