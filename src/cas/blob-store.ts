import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { digestHex, type Digest } from '../digest/digest.js';
import { HashingStream, VerifyingStream } from '../digest/verify.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { fsyncDir, fsyncFile, removeDeadTemps, streamToFileAtomic, tempPathFor } from './atomic.js';
import type { CopyThreads, Piece } from './copy-plan.js';
import { CHUNK } from '../chunk.js';

/** What a write stored: the digest and size of the bytes that arrived. */
export interface StoredBlob {
  digest: Digest;
  size: number;
  /** False when the store already held these bytes (a dedup hit); set by `put`. */
  created?: boolean;
}

/** Read access to content-addressed blobs. Every stream it opens is verified unless told otherwise. */
export interface BlobReader {
  has(digest: Digest): Promise<boolean>;
  /** Size on disk, or undefined when absent. */
  size(digest: Digest): Promise<number | undefined>;
  /** A stream of the blob, failing at the end if its digest or size (when given) is wrong. */
  open(digest: Digest, size?: number, options?: { start?: number; end?: number; verify?: boolean }): Promise<Readable>;
}

/** A blob store: reading plus atomic, verified writes. */
export interface BlobStore extends BlobReader {
  /** Streams `source` in; with `expected`, refuses (and keeps nothing) if it does not match. */
  put(source: Readable, expected?: StoredBlob): Promise<StoredBlob>;
  /** Makes `digest` present by hard-linking or copying (verified) another blob folder's file `from`. */
  adopt(from: string, digest: Digest, size: number): Promise<void>;
  delete(digest: Digest): Promise<void>;
  list(): AsyncIterable<Digest>;
}

/** Blobs in an OCI image layout's `blobs/sha256/` folder. */
/** Deferred fsyncs in flight at once (see FsBlobStore.backgroundSync). */
const SYNCS_AT_ONCE = 2;

export class FsBlobStore implements BlobStore {
  readonly dir: string;
  private readonly pending: Promise<void>[] = [];
  /** Background fsyncs running, and those waiting for a turn. */
  private syncing = 0;
  private readonly syncQueue: (() => void)[] = [];
  /** Digests whose temp files are being moved into place. */
  private readonly placing = new Set<Digest>();
  /** Whether the blob folder is known to exist (putPlan makes it once). */
  private made = false;

  /**
   * With `deferSync`, `put` returns once the bytes are written and hashed, and the fsync + rename
   * that make a blob durable and visible run in the background until `flush`: a writer of many
   * blocks then waits for the disk once, not once per block. Callers must `flush` before relying
   * on the blobs (LayoutImageWriter does so before tagging).
   */
  constructor(
    readonly root: string,
    private readonly options: { deferSync?: boolean } = {},
  ) {
    this.dir = join(root, 'blobs', 'sha256');
  }

  /** Waits for every deferred write to be durable and in place; throws the first failure. */
  async flush(): Promise<void> {
    const all = this.pending.splice(0);
    const results = await Promise.allSettled(all);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    if (all.length) await fsyncDir(this.dir);
  }

  /** fsyncs `file`, at most SYNCS_AT_ONCE at a time: more would take the thread pool from the reads and writes still running. */
  private async backgroundSync(file: string): Promise<void> {
    while (this.syncing >= SYNCS_AT_ONCE) await new Promise<void>((r) => this.syncQueue.push(r));
    this.syncing++;
    try {
      await fsyncFile(file);
    } finally {
      this.syncing--;
      this.syncQueue.shift()?.();
    }
  }

  path(digest: Digest): string {
    return join(this.dir, digestHex(digest));
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.size(digest)) !== undefined;
  }

  async size(digest: Digest): Promise<number | undefined> {
    try {
      const st = await fsp.stat(this.path(digest));
      return st.isFile() ? st.size : undefined;
    } catch {
      return undefined;
    }
  }

  /** Where the blob's file is, when it is there whole (see ImageReader.locate). */
  async locate(d: { digest: Digest; size: number }): Promise<{ path: string; offset: number; size: number; blobFile: true } | undefined> {
    return (await this.size(d.digest)) === d.size ? { path: this.path(d.digest), offset: 0, size: d.size, blobFile: true } : undefined;
  }

  /** The blob's file, open for reading (by position, say); EMISSING when it is not there. */
  async openHandle(digest: Digest): Promise<fsp.FileHandle> {
    const p = this.path(digest);
    return fsp.open(p, 'r').catch((err) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BlockportError('EMISSING', `blob ${digest} is missing from ${this.root}`, { subject: digest });
      }
      throw fromSystemError(err, p);
    });
  }

  async open(digest: Digest, size?: number, options: { start?: number; end?: number; verify?: boolean } = {}): Promise<Readable> {
    const fh = await this.openHandle(digest);
    const ranged = options.start !== undefined || options.end !== undefined;
    if (ranged || options.verify === false) return fh.createReadStream({ start: options.start, end: options.end, highWaterMark: CHUNK });
    const actual = (await fh.stat()).size;
    if (size !== undefined && actual !== size) {
      await fh.close();
      const how = actual < size ? `truncated (${actual} of ${size} bytes)` : `${actual} bytes, ${size} expected`;
      throw new BlockportError(actual < size ? 'ECORRUPT' : 'EDIGEST', `blob ${digest} in ${this.root} is ${how}`, { subject: digest });
    }
    const stream = fh.createReadStream({ highWaterMark: CHUNK });
    // a reader that stops early (or fails) closes the file too, not only the check
    return stream.pipe(new VerifyingStream(digest, actual, `blob ${digest}`)).on('close', () => stream.destroy());
  }

  /**
   * Creates the blob folder on this store's first write, and removes the temp files dead
   * writers left there and in the layout's top folder (a blockify or materialize killed while
   * writing a blob or index.json): its re-run then leaves the store clean.
   */
  private async ready(): Promise<void> {
    if (this.made) return;
    await fsp.mkdir(this.dir, { recursive: true });
    for (const dir of [this.dir, this.root]) await removeDeadTemps(dir);
    this.made = true;
  }

  async put(source: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    await this.ready();
    await fsp.mkdir(this.dir, { recursive: true });
    if (expected && (await this.size(expected.digest)) === expected.size) {
      for await (const _ of source); // drain: the producer (often a tar entry) must still reach its end
      return { ...expected, created: false };
    }
    // hash once: verify against what was promised, or learn the digest that names the blob
    const hashing = expected ? undefined : new HashingStream();
    const check = expected ? new VerifyingStream(expected.digest, expected.size, `blob ${expected.digest}`) : hashing!;
    let stored: StoredBlob | undefined;
    await streamToFileAtomic(join(this.dir, 'incoming'), source, [check], async (tmp) => {
      const sum = hashing ? hashing.summary : { digest: expected!.digest, size: expected!.size };
      stored = await this.place(tmp, sum);
    }, { sync: !this.options.deferSync });
    return stored!;
  }

  /**
   * Puts the bytes of a copy plan, written and hashed on a copy thread: no byte passes through
   * the main thread. The blob is named by the digest the thread computed; with `expected`, a
   * blob already present is not written again and other bytes are refused, nothing kept.
   */
  async putPlan(plan: AsyncIterable<Piece>, threads: CopyThreads, expected?: StoredBlob): Promise<StoredBlob> {
    if (expected && (await this.size(expected.digest)) === expected.size) return { ...expected, created: false };
    await this.ready();
    const tmp = tempPathFor(join(this.dir, 'incoming'));
    try {
      const sum = await threads.copy(tmp, 0, plan, { create: true });
      if (expected && (sum.digest !== expected.digest || sum.size !== expected.size)) {
        throw new BlockportError('EDIGEST', `blob ${expected.digest}: digest mismatch (got ${sum.digest}, ${sum.size} bytes)`, { subject: expected.digest });
      }
      if (!this.options.deferSync) await fsyncFile(tmp);
      return await this.place(tmp, sum);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw fromSystemError(err, this.root);
    }
  }

  /**
   * Moves a written temp file to its digest's place (now, or in the background with deferSync),
   * or drops it when the blob is already there. The temp file is gone on failure.
   */
  private async place(tmp: string, sum: { digest: Digest; size: number }): Promise<StoredBlob> {
    // a twin still on its way in (deferred, or written beside this one) makes this one a dedup hit
    const twin = this.placing.has(sum.digest);
    this.placing.add(sum.digest);
    const created = !twin && (await this.size(sum.digest)) !== sum.size;
    const move = async () => {
      if ((await this.size(sum.digest)) === sum.size) {
        await fsp.rm(tmp, { force: true });
        return;
      }
      if (this.options.deferSync) await this.backgroundSync(tmp);
      await fsp.rename(tmp, this.path(sum.digest));
      if (!this.options.deferSync) await fsyncDir(this.dir); // deferred writes sync the folder once, in flush
    };
    if (!this.options.deferSync) await move().finally(() => this.placing.delete(sum.digest));
    else {
      this.pending.push(move().catch(async (err) => {
        await fsp.rm(tmp, { force: true });
        throw err;
      }).finally(() => this.placing.delete(sum.digest)));
    }
    return { ...sum, created };
  }

  async adopt(from: string, digest: Digest, size: number): Promise<void> {
    if ((await this.size(digest)) === size) return;
    await fsp.mkdir(this.dir, { recursive: true });
    const target = this.path(digest);
    try {
      await fsp.link(from, target);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        // a racing writer got there first; keep theirs only if it is whole
        if ((await this.size(digest)) === size) return;
        await fsp.rm(target, { force: true });
      } else if (code === 'ENOENT') {
        throw new BlockportError('EMISSING', `blob ${digest} is missing (${from})`, { subject: digest });
      }
    }
    await this.put(openFile(from), { digest, size });
  }

  async delete(digest: Digest): Promise<void> {
    await fsp.rm(this.path(digest), { force: true });
  }

  async *list(): AsyncIterable<Digest> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return;
    }
    for (const n of names) if (/^[a-f0-9]{64}$/.test(n)) yield `sha256:${n}` as Digest;
  }
}

/** Opens a plain file as a stream with a large buffer (the default 64 KiB halves hashing speed). */
export function openFile(path: string, start?: number, end?: number): Readable {
  return createReadStream(path, { start, end, highWaterMark: CHUNK });
}
