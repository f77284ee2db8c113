import { Transform, type TransformCallback } from 'node:stream';
import { BlockportError } from '../errors.js';
import { Hasher, type Digest } from './digest.js';
import { CHUNK } from '../chunk.js';

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
  private readonly hasher = new Hasher();

  constructor(
    readonly expected: Digest,
    readonly size: number,
    private readonly what: string = expected,
  ) {
    super({ highWaterMark: CHUNK });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    if (this.hasher.size > this.size) {
      cb(new BlockportError('EDIGEST', `${this.what}: more than the expected ${this.size} bytes`, { subject: this.expected }));
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.hasher.size !== this.size) {
      cb(new BlockportError('EDIGEST', `${this.what}: truncated (${this.hasher.size} of ${this.size} bytes)`, { subject: this.expected }));
      return;
    }
    const got = this.hasher.digest();
    if (got !== this.expected) {
      cb(new BlockportError('EDIGEST', `${this.what}: digest mismatch (got ${got})`, { subject: this.expected }));
      return;
    }
    cb();
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
