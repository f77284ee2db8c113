import { createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { StoredBlob } from '../cas/blob-store.js';
import type { CopyThreads, Piece } from '../cas/copy-plan.js';
import { sha256, type Digest } from '../digest/digest.js';
import { checkSize, HashingStream } from '../digest/verify.js';
import { BlockportError, fromSystemError } from '../errors.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import { parseJson, readSmall } from '../oci/json.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/types.js';
import { TaskPool } from './pool.js';
import { isManifestType, Repository } from './repository.js';
import { uploadBlob, type BlobSource } from './upload.js';
import { CHUNK, peek } from '../chunk.js';

/** What a push did, for statistics and tests. */
export interface PushStats {
  /** Blobs sent and their bytes. */
  uploaded: number;
  uploadedBytes: number;
  /** Blobs made present by a cross-repository mount (no bytes sent). */
  mounted: number;
  /** Blobs the registry already had (found by HEAD). */
  skipped: number;
  skippedBytes: number;
  /** Manifests and indexes PUT, and their bytes. */
  manifests: number;
  manifestBytes: number;
}

export interface RemoteWriterOptions {
  /** Uploads running at once (default 4). */
  concurrency?: number;
  /** See UploadOptions.chunkSize. */
  chunkSize?: number;
  /**
   * Also tag the manifests of a blockport index (`TAG.blockport-I` for position I), so that
   * registries whose GC drops untagged manifests even when an index references them (distribution
   * 2.x `garbage-collect --delete-untagged`) keep the image. Default true.
   */
  childTags?: boolean;
  /** Repositories of the same registry to mount blobs from when they hold them (`push --mount-from`). */
  mountFrom?: string[];
}

/** The tag manifest `i` of the blockport index tagged `tag` also gets (at most 128 characters). */
export function childTag(tag: string, i: number): string {
  const suffix = `.blockport-${i}`;
  return `${tag.slice(0, 128 - suffix.length)}${suffix}`;
}

/** Registries refuse larger manifests; smaller JSON blobs are looked at before they are sent. */
const MAX_MANIFEST = 4 << 20;

/** Whether a small JSON blob is a manifest or index (which go to /manifests/, not /blobs/). */
function looksLikeManifest(bytes: Buffer): boolean {
  try {
    const j = JSON.parse(bytes.toString()) as { schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown; config?: unknown; layers?: unknown };
    if (!j || typeof j !== 'object' || j.schemaVersion !== 2) return false;
    return (typeof j.mediaType === 'string' && isManifestType(j.mediaType)) || Array.isArray(j.manifests) || (Boolean(j.config) && Array.isArray(j.layers));
  } catch {
    return false;
  }
}

async function firstByte(file: string): Promise<number | undefined> {
  const fh = await fsp.open(file, 'r');
  try {
    const { bytesRead, buffer } = await fh.read(Buffer.alloc(1), 0, 1, 0);
    return bytesRead ? buffer[0] : undefined;
  } finally {
    await fh.close();
  }
}

async function drain(source: Readable): Promise<void> {
  for await (const _ of source); // the producer (often a tar entry) must still reach its end
}

/**
 * Writes an image to a registry. Blobs the repository has (HEAD) are skipped; the rest upload
 * up to `concurrency` at once. A blob of unknown digest is first spooled to a temp file while
 * hashed (the final PUT needs the digest); a blob of known digest streams straight up. Small
 * JSON blobs that are manifests are held and PUT at `commit`, children before the index, the
 * top one under the tag, so the tag appears last.
 */
export class RemoteImageWriter implements ImageWriter {
  readonly stats: PushStats = { uploaded: 0, uploadedBytes: 0, mounted: 0, skipped: 0, skippedBytes: 0, manifests: 0, manifestBytes: 0 };
  private readonly pool: TaskPool;
  private readonly aborter = new AbortController();
  /** Blobs the repository has or will have once the queued uploads finish. */
  private readonly present = new Set<Digest>();
  private readonly held = new Map<Digest, Buffer>();
  /** Blobs a HEAD found missing, so copyBlob right after hasBlob does not ask twice. */
  private readonly absent = new Set<Digest>();
  private tmp?: string;
  private spools = 0;

  constructor(
    readonly ref: string,
    readonly repo: Repository,
    readonly target: { tag?: string; digest?: Digest },
    private readonly options: RemoteWriterOptions = {},
  ) {
    this.pool = new TaskPool(options.concurrency ?? 4);
  }

  /** Whether the repository holds `desc` (asks the registry once per digest). */
  async hasBlob(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean> {
    if (this.present.has(desc.digest)) return true;
    const size = await this.repo.blobSize(desc.digest);
    if (size === undefined || size !== desc.size) {
      this.absent.add(desc.digest);
      return false;
    }
    this.present.add(desc.digest);
    return true;
  }

  private skip(size: number): void {
    this.stats.skipped++;
    this.stats.skippedBytes += size;
  }

  /** Queues an upload; the blob counts as present from now on. */
  private async queue(blob: { digest: Digest; size: number }, source: BlobSource, mountFrom?: string, done?: () => Promise<void>): Promise<void> {
    this.present.add(blob.digest);
    await this.pool.add(async () => {
      try {
        const how = await uploadBlob(this.repo, blob, source, { mountFrom, chunkSize: this.options.chunkSize, signal: this.aborter.signal });
        this.count(how, blob.size);
      } finally {
        await done?.();
      }
    });
  }

  private count(how: 'uploaded' | 'mounted', size: number): void {
    if (how === 'mounted') this.stats.mounted++;
    else {
      this.stats.uploaded++;
      this.stats.uploadedBytes += size;
    }
  }

  /** A small blob read whole: held if it is a manifest, else uploaded from memory. */
  private async putSmall(bytes: Buffer): Promise<StoredBlob> {
    const blob = { digest: sha256(bytes), size: bytes.length };
    if (looksLikeManifest(bytes)) {
      this.held.set(blob.digest, bytes);
      return { ...blob, created: true };
    }
    if (await this.hasBlob(blob)) {
      this.skip(blob.size);
      return { ...blob, created: false };
    }
    await this.queue(blob, { bytes });
    return { ...blob, created: true };
  }

  async putBlob(source: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    return expected ? this.putKnown(source, expected) : this.putSpooled(source);
  }

  /** A blob whose digest is promised: streamed straight up, verified on the way. */
  private async putKnown(source: Readable, expected: StoredBlob): Promise<StoredBlob> {
    const blob = { digest: expected.digest, size: checkSize(expected.size, `blob ${expected.digest}`) };
    if (this.held.has(blob.digest)) {
      await drain(source);
      return { ...blob, created: false };
    }
    // small JSON first: a manifest is no blob, so asking for it under /blobs/ would be wasted
    if (blob.size <= MAX_MANIFEST) {
      const p = await peek(source, 1);
      source = p.stream;
      if (p.head[0] === 0x7b /* { */) {
        const bytes = await readSmall(source, `blob ${blob.digest}`, MAX_MANIFEST);
        if (bytes.length !== blob.size || sha256(bytes) !== blob.digest) {
          throw new BlockportError('EDIGEST', `blob ${blob.digest}: content does not match (got ${sha256(bytes)}, ${bytes.length} bytes)`, { subject: blob.digest });
        }
        return this.putSmall(bytes);
      }
    }
    if (await this.hasBlob(blob)) {
      await drain(source);
      this.skip(blob.size);
      return { ...blob, created: false };
    }
    this.present.add(blob.digest);
    this.count(await uploadBlob(this.repo, blob, { stream: source }, { chunkSize: this.options.chunkSize, signal: this.aborter.signal }), blob.size);
    return { ...blob, created: true };
  }

  private async tempDir(): Promise<string> {
    this.tmp ??= await fsp.mkdtemp(join(tmpdir(), 'blockport-push-'));
    return this.tmp;
  }

  /** A blob of unknown digest: spooled to a temp file while hashed, then uploaded in the background. */
  private async putSpooled(source: Readable): Promise<StoredBlob> {
    const file = join(await this.tempDir(), `spool-${this.spools++}`);
    const hashing = new HashingStream();
    try {
      await pipeline(source, hashing, createWriteStream(file, { highWaterMark: CHUNK }));
    } catch (err) {
      await fsp.rm(file, { force: true });
      throw fromSystemError(err, file);
    }
    return this.putFile(file, hashing.summary);
  }

  /** A blob spooled to `file` (removed once it is uploaded or found present). */
  private async putFile(file: string, blob: { digest: Digest; size: number }): Promise<StoredBlob> {
    const remove = () => fsp.rm(file, { force: true });
    if (blob.size <= MAX_MANIFEST && (await firstByte(file)) === 0x7b) {
      const bytes = await fsp.readFile(file);
      await remove();
      return this.putSmall(bytes);
    }
    if (await this.hasBlob(blob)) {
      await remove();
      this.skip(blob.size);
      return { ...blob, created: false };
    }
    await this.queue(blob, { file }, undefined, remove);
    return { ...blob, created: true };
  }

  /** Runs the plan into a temp file on a copy thread (which hashes it), then uploads that file. */
  async putPlan(plan: AsyncIterable<Piece>, threads: CopyThreads, expected?: StoredBlob): Promise<StoredBlob> {
    if (expected && (this.held.has(expected.digest) || (await this.hasBlob(expected)))) {
      this.skip(expected.size);
      return { ...expected, created: false };
    }
    const file = join(await this.tempDir(), `spool-${this.spools++}`);
    let blob: { digest: Digest; size: number };
    try {
      blob = await threads.copy(file, 0, plan, { create: true, signal: this.aborter.signal });
      if (expected && (blob.digest !== expected.digest || blob.size !== expected.size)) {
        throw new BlockportError('EDIGEST', `blob ${expected.digest}: digest mismatch (got ${blob.digest}, ${blob.size} bytes)`, { subject: expected.digest });
      }
    } catch (err) {
      await fsp.rm(file, { force: true });
      throw fromSystemError(err, file);
    }
    return this.putFile(file, blob);
  }

  async copyBlob(from: ImageReader, desc: Descriptor): Promise<void> {
    if (!this.absent.has(desc.digest) && (await this.hasBlob(desc))) {
      this.skip(desc.size);
      return;
    }
    // the same registry holds it under another name: let the registry link it, no bytes sent
    const fromRepo = (from as { repo?: unknown }).repo;
    const mountFrom = fromRepo instanceof Repository && fromRepo.client.host === this.repo.client.host ? fromRepo.name : await this.mountSource(desc);
    const spot = await from.locate(desc);
    const local = spot?.blobFile ? spot.path : undefined;
    await this.queue({ digest: desc.digest, size: desc.size }, local ? { file: local } : { open: () => from.openBlob(desc) }, mountFrom);
  }

  /** The first `mountFrom` repository of this registry that holds `desc` (one HEAD each), to mount it from. */
  private async mountSource(desc: Descriptor): Promise<string | undefined> {
    for (const name of this.options.mountFrom ?? []) {
      if (name === this.repo.name) continue;
      const other = new Repository(this.repo.client, name, false);
      if ((await other.blobSize(desc.digest).catch(() => undefined)) === desc.size) return name;
    }
    return undefined;
  }

  /** Makes sure a blob a manifest references is in the repository. */
  private async ensureBlob(d: Descriptor, where: string): Promise<void> {
    const bytes = this.held.get(d.digest);
    if (bytes && !this.present.has(d.digest)) {
      this.present.add(d.digest);
      this.count(await uploadBlob(this.repo, d, { bytes }, { signal: this.aborter.signal }), d.size);
    } else if (!(await this.hasBlob(d))) {
      throw new BlockportError('EMISSING', `${where}: blob ${d.digest} was never written`, { subject: d.digest });
    }
  }

  /** PUTs manifest `desc` under `ref` after everything it references. */
  private async pushManifest(desc: Descriptor, ref: string, depth = 0): Promise<void> {
    if (depth > 2) throw new BlockportError('EUNSUPPORTED', `${this.ref}: indexes nested too deep`);
    let bytes = this.held.get(desc.digest);
    if (!bytes) {
      // not written here: a child the repository has is fine as it is; a top one is re-tagged
      if (depth > 0 && (await this.repo.hasManifest(desc.digest))) return;
      bytes = (await this.repo.getManifest(desc.digest)).bytes;
    }
    const where = `${this.ref}: manifest ${desc.digest}`;
    const doc = parseJson<ImageIndex & ImageManifest>(bytes, where);
    if (Array.isArray(doc.manifests)) {
      const tagChildren = this.options.childTags !== false && depth === 0 && this.target.tag !== undefined && doc.artifactType === MediaType.blockImage;
      for (const [i, child] of doc.manifests.entries()) {
        if (isManifestType(child.mediaType)) await this.pushManifest(child, tagChildren && this.held.has(child.digest) ? childTag(this.target.tag!, i) : child.digest, depth + 1);
        else await this.ensureBlob(child, where);
      }
    } else {
      for (const d of [doc.config, ...(doc.layers ?? [])]) await this.ensureBlob(d, where);
    }
    await this.repo.putManifest(ref, bytes, desc.mediaType);
    this.stats.manifests++;
    this.stats.manifestBytes += bytes.length;
  }

  async commit(top: Descriptor): Promise<void> {
    await this.pool.drain();
    if (this.target.digest && this.target.digest !== top.digest) {
      throw new BlockportError('EUSAGE', `${this.ref}: the image written is ${top.digest}, not the digest named`);
    }
    await this.pushManifest(top, this.target.digest ?? this.target.tag!);
    await this.cleanup();
  }

  async abort(): Promise<void> {
    this.aborter.abort();
    await this.pool.drain().catch(() => {});
    await this.cleanup();
  }

  private async cleanup(): Promise<void> {
    this.held.clear();
    if (this.tmp) await fsp.rm(this.tmp, { recursive: true, force: true });
    this.tmp = undefined;
  }
}
