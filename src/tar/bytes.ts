import { BlockportError } from '../errors.js';

const EMPTY = Buffer.alloc(0);

/**
 * Pull-style reading of exact byte counts from a chunked stream, without copying large chunks
 * more than needed. Truncation is an ECORRUPT error naming `what`.
 */
export class ByteSource {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  /** Bytes handed out so far. */
  position = 0;

  constructor(
    source: AsyncIterable<Buffer>,
    private readonly what: string,
  ) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** The next chunk of the source, or null at its end. */
  private async next(): Promise<Buffer | null> {
    if (this.done) return null;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return null;
    }
    return Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
  }

  /** Appends the next chunk to the buffer (only ever called with little or nothing buffered). */
  private async fill(): Promise<boolean> {
    const chunk = await this.next();
    if (!chunk) return false;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  /**
   * Exactly `n` bytes, or null at a clean end (no byte left). Throws on a partial read. Across a
   * chunk boundary only the `n` bytes are copied, never the rest of the new chunk.
   */
  async read(n: number): Promise<Buffer | null> {
    if (this.buf.length >= n) {
      const out = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      this.position += n;
      return out;
    }
    const parts = this.buf.length ? [this.buf] : [];
    let have = this.buf.length;
    this.buf = EMPTY;
    while (have < n) {
      const chunk = await this.next();
      if (!chunk) {
        if (have === 0) return null;
        throw new BlockportError('ECORRUPT', `${this.what}: truncated (unexpected end after ${this.position + have} bytes)`);
      }
      const need = n - have;
      if (chunk.length > need) {
        parts.push(chunk.subarray(0, need));
        this.buf = chunk.subarray(need);
        have = n;
      } else {
        parts.push(chunk);
        have += chunk.length;
      }
    }
    this.position += n;
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, n);
  }

  /** Exactly `n` bytes or a truncation error. */
  async readExact(n: number): Promise<Buffer> {
    const b = await this.read(n);
    if (b === null && n > 0) throw new BlockportError('ECORRUPT', `${this.what}: truncated (unexpected end after ${this.position} bytes)`);
    return b ?? Buffer.alloc(0);
  }

  /** Yields `n` bytes as they arrive, in chunks of at most the source's chunk size. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.fill())) {
        throw new BlockportError('ECORRUPT', `${this.what}: truncated (unexpected end after ${this.position} bytes)`);
      }
      const k = Math.min(left, this.buf.length);
      const out = this.buf.subarray(0, k);
      this.buf = this.buf.subarray(k);
      this.position += k;
      left -= k;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n));
  }

  /** Everything that is left, up to `limit` bytes (more is an error). */
  async rest(limit: number): Promise<Buffer> {
    const parts: Buffer[] = [this.buf];
    let total = this.buf.length;
    this.buf = Buffer.alloc(0);
    while (await this.fill()) {
      total += this.buf.length;
      if (total > limit) throw new BlockportError('ECORRUPT', `${this.what}: more than ${limit} bytes after the end-of-archive marker`);
      parts.push(this.buf);
      this.buf = Buffer.alloc(0);
    }
    this.position += total;
    return Buffer.concat(parts);
  }
}
