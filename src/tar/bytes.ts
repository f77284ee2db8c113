import { BlockportError } from '../errors.js';

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

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  /** Exactly `n` bytes, or null at a clean end (no byte left). Throws on a partial read. */
  async read(n: number): Promise<Buffer | null> {
    while (this.buf.length < n) {
      if (!(await this.fill())) {
        if (this.buf.length === 0) return null;
        throw new BlockportError('ECORRUPT', `${this.what}: truncated (unexpected end after ${this.position + this.buf.length} bytes)`);
      }
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.position += n;
    return out;
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
