import { Transform, type TransformCallback } from 'node:stream';
import { BlockportError } from '../errors.js';
import { Hasher, type Digest } from './digest.js';
import { OFFLOAD_MIN, OffThreadHasher } from './offload.js';
import { CHUNK } from '../chunk.js';

/** A sha256 in progress: on this thread, or on the hashing thread for large inputs. */
export interface StreamHasher {
  readonly size: number;
  update(chunk: Buffer): void | Promise<void>;
  digest(): Digest | Promise<Digest>;
  drop?(): void;
}

/** A hasher for `size` bytes: large inputs go to the second thread, so reading and verifying overlap. */
export function hasherFor(size: number): StreamHasher {
  return size >= OFFLOAD_MIN ? new OffThreadHasher() : new Hasher();
}

/** Largest blob blockport accepts from any descriptor: refuses absurd sizes before reading. */
export const MAX_BLOB_SIZE = 2 ** 45; // 32 TiB

export function checkSize(size: unknown, where: string): number {
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > MAX_BLOB_SIZE) {
    throw new BlockportError('ECORRUPT', `${where}: invalid size ${JSON.stringify(size)}`);
  }
  return size;
}

/**
 * Passes bytes through while hashing them; fails the stream if more than `size` bytes arrive, or
 * if at the end the digest or length differs. Consumers therefore never see a successful end of
 * unverified content.
 */
export class VerifyingStream extends Transform {
  private readonly hasher: StreamHasher;
  private finished = false;

  constructor(
    readonly expected: Digest,
    readonly size: number,
    private readonly what: string = expected,
  ) {
    super({ highWaterMark: CHUNK });
    this.hasher = hasherFor(size);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const queued = this.hasher.update(chunk);
    if (this.hasher.size > this.size) {
      cb(new BlockportError('EDIGEST', `${this.what}: more than the expected ${this.size} bytes`, { subject: this.expected }));
      return;
    }
    if (queued) queued.then(() => cb(null, chunk), cb);
    else cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.finished = true;
    if (this.hasher.size !== this.size) {
      cb(new BlockportError('EDIGEST', `${this.what}: truncated (${this.hasher.size} of ${this.size} bytes)`, { subject: this.expected }));
      return;
    }
    Promise.resolve(this.hasher.digest()).then((got) => {
      if (got !== this.expected) cb(new BlockportError('EDIGEST', `${this.what}: digest mismatch (got ${got})`, { subject: this.expected }));
      else cb();
    }, cb);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.finished) this.hasher.drop?.();
    cb(err);
  }
}

/** Passes bytes through and records their digest and size, available after the end. */
export class HashingStream extends Transform {
  private readonly hasher = new Hasher();
  private result?: { digest: Digest; size: number };

  private counted = 0;

  /**
   * `onChunk` sees each chunk's length as it passes (for progress). With `hash: false` it only
   * counts, for callers whose bytes are verified elsewhere already: hashing is the costliest step.
   */
  constructor(
    private readonly onChunk?: (n: number) => void,
    private readonly hash = true,
  ) {
    super({ highWaterMark: CHUNK });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.hash) this.hasher.update(chunk);
    this.counted += chunk.length;
    this.onChunk?.(chunk.length);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.result = { digest: this.hash ? this.hasher.digest() : ('' as Digest), size: this.counted };
    cb();
  }

  /** Digest and size of everything that passed; throws if the stream has not ended. */
  get summary(): { digest: Digest; size: number } {
    if (!this.result) throw new Error('HashingStream: summary read before end of stream');
    return this.result;
  }
}
