import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { CopyThreads, Piece } from '../cas/copy-plan.js';
import { acquireLock } from '../cas/lock.js';
import { writeFileAtomic } from '../cas/atomic.js';
import { FsBlobStore, type StoredBlob } from '../cas/blob-store.js';
import { BlockportError, fromSystemError } from '../errors.js';
import type { FileSpot, ImageReader, ImageWriter, LayerRecords, OpenOptions } from './image.js';
import { parseJson, readSmall } from './json.js';
import { Annotation, MediaType } from './media-types.js';
import { checkDescriptor, resolveImage, ResolvedImageReader, type ResolvedImage } from './resolve.js';
import { isReferrerEntry, REFERRER_SUBJECT } from './referrer-entries.js';
import type { Descriptor, ImageIndex } from './types.js';

const LAYOUT_FILE = JSON.stringify({ imageLayoutVersion: '1.0.0' });

/** An OCI image layout folder: `oci-layout`, `index.json`, `blobs/sha256/`. */
export class OciLayout {
  readonly blobs: FsBlobStore;

  constructor(readonly root: string) {
    this.blobs = new FsBlobStore(root);
  }

  /** Creates the layout files if they are missing. */
  async init(): Promise<void> {
    try {
      await fsp.mkdir(this.blobs.dir, { recursive: true });
      if (!(await exists(join(this.root, 'oci-layout')))) await writeFileAtomic(join(this.root, 'oci-layout'), LAYOUT_FILE);
      if (!(await exists(join(this.root, 'index.json')))) {
        await writeFileAtomic(join(this.root, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] }));
      }
    } catch (err) {
      throw fromSystemError(err, this.root);
    }
  }

  async readIndex(): Promise<ImageIndex> {
    const p = join(this.root, 'index.json');
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BlockportError('ENOTFOUND', `${this.root}: not an OCI image layout (no index.json)`, { subject: this.root });
      }
      throw fromSystemError(err, p);
    }
    const idx = parseJson<ImageIndex>(bytes, p);
    if (!Array.isArray(idx.manifests)) throw new BlockportError('ECORRUPT', `${p}: no manifests array`);
    idx.manifests.forEach((m, i) => checkDescriptor(m, `${p}: manifests[${i}]`));
    return idx;
  }

  /** The descriptor tagged `tag`; without a tag, the only one there is. */
  async find(tag: string | undefined): Promise<Descriptor> {
    const idx = await this.readIndex();
    if (tag === undefined) {
      // signatures and SBOMs kept beside an image are not images of their own
      const images = idx.manifests.filter((m) => !isReferrerEntry(m));
      if (images.length === 1) return images[0];
      throw new BlockportError('EUSAGE', `${this.root}: holds ${images.length} images; name one with :TAG`);
    }
    const d = idx.manifests.find((m) => m.annotations?.[Annotation.refName] === tag);
    if (!d) throw new BlockportError('ENOTFOUND', `${this.root}: no image tagged ${tag}`, { subject: tag });
    return d;
  }

  /** Tags `desc` (replacing any earlier image of that tag) under the layout's lock. */
  async tag(desc: Descriptor, tag: string | undefined): Promise<void> {
    const lock = await acquireLock(join(this.root, '.index.lock'), this.root);
    try {
      const idx = await this.readIndex();
      const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
      if (desc.artifactType) entry.artifactType = desc.artifactType;
      if (desc.platform) entry.platform = desc.platform;
      if (tag !== undefined) entry.annotations = { [Annotation.refName]: tag };
      idx.manifests = idx.manifests.filter((m) => (tag === undefined ? m.digest !== desc.digest : m.annotations?.[Annotation.refName] !== tag));
      idx.manifests.push(entry);
      await writeFileAtomic(join(this.root, 'index.json'), JSON.stringify(idx, null, 2));
    } finally {
      await lock.release();
    }
  }

  /**
   * Lists `desc`, an OCI 1.1 referrer of `subject`, untagged in index.json (as OCI layouts keep
   * referrers), marked with its subject so lookups and `find` need not read it.
   */
  async addReferrer(desc: Descriptor, subject: string): Promise<void> {
    const lock = await acquireLock(join(this.root, '.index.lock'), this.root);
    try {
      const idx = await this.readIndex();
      if (idx.manifests.some((m) => m.digest === desc.digest && m.annotations?.[REFERRER_SUBJECT] === subject)) return;
      const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
      if (desc.artifactType) entry.artifactType = desc.artifactType;
      entry.annotations = { [REFERRER_SUBJECT]: subject };
      idx.manifests.push(entry);
      await writeFileAtomic(join(this.root, 'index.json'), JSON.stringify(idx, null, 2));
    } finally {
      await lock.release();
    }
  }

  /** Removes the index.json entries `keep` refuses, under the layout's lock; returns how many. */
  async prune(keep: (d: Descriptor) => boolean): Promise<number> {
    const lock = await acquireLock(join(this.root, '.index.lock'), this.root);
    try {
      const idx = await this.readIndex();
      const before = idx.manifests.length;
      idx.manifests = idx.manifests.filter(keep);
      if (idx.manifests.length !== before) await writeFileAtomic(join(this.root, 'index.json'), JSON.stringify(idx, null, 2));
      return before - idx.manifests.length;
    } finally {
      await lock.release();
    }
  }

  async untag(tag: string): Promise<boolean> {
    const lock = await acquireLock(join(this.root, '.index.lock'), this.root);
    try {
      const idx = await this.readIndex();
      const before = idx.manifests.length;
      idx.manifests = idx.manifests.filter((m) => m.annotations?.[Annotation.refName] !== tag);
      if (idx.manifests.length === before) return false;
      await writeFileAtomic(join(this.root, 'index.json'), JSON.stringify(idx, null, 2));
      return true;
    } finally {
      await lock.release();
    }
  }

  /** A small blob (manifest, index, config), verified. */
  async readBlob(d: Descriptor): Promise<Buffer> {
    return readSmall(await this.blobs.open(d.digest, d.size), `blob ${d.digest}`);
  }

  /** Opens the image tagged `tag` for reading; `records` when this layout keeps them (the store). */
  async openImage(tag: string | undefined, ref: string, records?: LayerRecords, opts: OpenOptions = {}): Promise<LayoutImageReader> {
    const top = await this.find(tag);
    const resolved = await resolveImage(top, (d) => this.readBlob(d), ref, opts.platform);
    return new LayoutImageReader(ref, this, resolved, records);
  }
}

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(
    () => true,
    () => false,
  );
}

export class LayoutImageReader extends ResolvedImageReader {
  constructor(
    ref: string,
    readonly layout: OciLayout,
    resolved: ResolvedImage,
    records?: LayerRecords,
  ) {
    super(ref, resolved, records);
  }

  protected openStored(desc: Descriptor): Promise<Readable> {
    return this.layout.blobs.open(desc.digest, desc.size);
  }

  override readBlob(desc: Descriptor): Promise<Buffer> {
    return this.layout.readBlob(desc);
  }

  locate(desc: Descriptor): Promise<FileSpot | undefined> {
    return this.layout.blobs.locate(desc);
  }
}

/**
 * Writes blobs straight into the layout (content-addressed, so harmless if never tagged). Blob
 * writes are made durable together, once, before the tag appears.
 */
export class LayoutImageWriter implements ImageWriter {
  private readonly blobs: FsBlobStore;

  constructor(
    readonly ref: string,
    readonly layout: OciLayout,
    readonly tagName: string | undefined,
    /** For a referrer written untagged: the digest it refers to (see OciLayout.addReferrer). */
    readonly subject?: string,
  ) {
    this.blobs = new FsBlobStore(layout.root, { deferSync: true });
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return (await this.layout.blobs.size(desc.digest)) === desc.size;
  }

  putBlob(source: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    return this.blobs.put(source, expected);
  }

  putPlan(plan: AsyncIterable<Piece>, threads: CopyThreads, expected?: StoredBlob): Promise<StoredBlob> {
    return this.blobs.putPlan(plan, threads, expected);
  }

  async copyBlob(from: ImageReader, desc: Descriptor): Promise<void> {
    if (await this.hasBlob(desc)) return;
    const spot = await from.locate(desc);
    if (spot?.blobFile) return this.layout.blobs.adopt(spot.path, desc.digest, desc.size);
    await this.layout.blobs.put(await from.openBlob(desc), { digest: desc.digest, size: desc.size });
  }

  async commit(top: Descriptor): Promise<void> {
    await this.blobs.flush();
    if (this.subject !== undefined && this.tagName === undefined) await this.layout.addReferrer(top, this.subject);
    else await this.layout.tag(top, this.tagName);
  }

  async abort(): Promise<void> {
    await this.blobs.flush().catch(() => {});
  }
}
