import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir, tempPathFor } from '../cas/atomic.js';
import type { Digest } from '../digest/digest.js';
import { hasherFor } from '../digest/verify.js';
import { BlockportError, fromSystemError } from '../errors.js';
import type { SplicedLayer } from './served-image.js';

/**
 * Splices one standard layer into the cache file `path`: written to a temp file beside it, hashed
 * as written, fsynced, and renamed only when it matches the diff_id and size. Readers may follow
 * the temp file while it grows (`waitFor`): every request for the layer, the first and any that
 * arrive meanwhile, reads the one splice.
 */
export class SpliceJob {
  /** Bytes written to the temp file so far. */
  written = 0;
  /** Set once the file is verified and renamed to `path`. */
  done = false;
  error?: unknown;
  /** The file readers open: the temp file while writing, then `path`. */
  file: string;
  readonly finished: Promise<void>;
  private waiters: (() => void)[] = [];
  private readonly abort = new AbortController();

  constructor(
    readonly layer: SplicedLayer,
    readonly path: string,
    /** Waits for a free splice slot; returns its release. */
    slot: () => Promise<() => void>,
  ) {
    this.file = tempPathFor(path);
    this.finished = this.run(slot).catch((err: unknown) => {
      this.error = err;
      this.wake();
    });
  }

  /**
   * Bytes readers may take: all once verified; until then all but the last, so that no client
   * receives a complete layer that turns out wrong, only a cut-short one.
   */
  get ready(): number {
    return this.done ? this.written : Math.min(this.written, this.layer.size - 1);
  }

  /** Resolves when at least `n` bytes are ready, or the job ended (done or failed). */
  waitFor(n: number): Promise<void> {
    if (this.ready >= n || this.done || this.error !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Stops the splice; its temp file is removed. */
  cancel(): void {
    this.abort.abort(new BlockportError('EIO', `serving stopped while layer ${this.layer.digest} was being spliced`));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async run(slot: () => Promise<() => void>): Promise<void> {
    const release = await slot();
    const tmp = this.file;
    const { digest, size, layer } = this.layer;
    const hasher = hasherFor(size);
    let fh: fsp.FileHandle | undefined;
    try {
      this.abort.signal.throwIfAborted();
      await fsp.mkdir(dirname(this.path), { recursive: true });
      fh = await fsp.open(tmp, 'wx', 0o644);
      for await (const chunk of layer.open()) {
        this.abort.signal.throwIfAborted();
        if (this.written + chunk.length > size) throw mismatch(digest, `more than the ${size} bytes the manifest says`);
        await hasher.update(chunk);
        await fh.write(chunk, 0, chunk.length, this.written);
        this.written += chunk.length;
        this.wake();
      }
      if (this.written !== size) throw mismatch(digest, `${this.written} bytes, the manifest says ${size}`);
      const got = await hasher.digest();
      if (got !== digest) throw mismatch(digest, `spliced to ${got}`);
      await fh.sync();
      await fh.close();
      fh = undefined;
      await fsp.rename(tmp, this.path);
      this.file = this.path;
      await fsyncDir(dirname(this.path));
      this.done = true;
      this.wake();
    } catch (err) {
      hasher.drop?.();
      await fh?.close().catch(() => {});
      await fsp.rm(tmp, { force: true });
      throw this.abort.signal.aborted ? this.abort.signal.reason : fromSystemError(err, this.path);
    } finally {
      release();
    }
  }
}

function mismatch(diffId: Digest, what: string): BlockportError {
  return new BlockportError('EDIGEST', `layer ${diffId} does not splice into its diff_id: ${what}`, { subject: diffId });
}
