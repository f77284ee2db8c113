import { readSync } from 'node:fs';
import { BlockportError } from '../errors.js';
import { CHUNK } from '../chunk.js';

const EMPTY = Buffer.alloc(0);

/** Exact-count reading, from a stream (ByteSource) or from a file by position (FileBytes). */
export interface ByteReader {
  /** Bytes handed out or skipped so far. */
  readonly position: number;
  read(n: number): Promise<Buffer | null>;
  readExact(n: number): Promise<Buffer>;
  take(n: number): AsyncGenerator<Buffer>;
  skip(n: number): Promise<void>;
  /** Up to `n` bytes (fewer only at the end; empty there), valid until the next call. */
  readUpTo(n: number): Promise<Buffer>;
}

/**
 * Pull-style reading of exact byte counts from a chunked stream, without copying large chunks
 * more than needed. Truncation is an ECORRUPT error naming `what`.
 */
export class ByteSource implements ByteReader {
  private readonly it: AsyncIterator<Buffer> | Iterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  /** Bytes handed out so far. */
  position = 0;

  /** From a stream, or from buffers at hand (an array: no stream or generator in between). */
  constructor(
    source: AsyncIterable<Buffer> | Iterable<Buffer>,
    private readonly what: string,
  ) {
    this.it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
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

  async readUpTo(n: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.fill())) return EMPTY;
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.position += out.length;
    return out;
  }
}

/** Bytes read around a position at once: a few tar headers of small files share one read. */
const WINDOW = 64 << 10;

/**
 * A ByteReader over `size` bytes of an open file, by positional reads: `skip` only moves the
 * position, so a tar reader walks the headers of a big archive without reading its file data.
 * Reads are synchronous: they come from the page cache in microseconds, and an async read costs
 * more in scheduling than in copying. The caller owns the descriptor.
 *
 * `read` and `readExact` return views of one reused window, valid until the next call (the tar
 * reader copies what it keeps); `take` and `rest` return buffers of their own.
 */
export class FileBytes implements ByteReader {
  private readonly win = Buffer.allocUnsafe(WINDOW);
  private winAt = 0;
  private winLen = 0;
  position = 0;

  /** Bytes [start, start + size) of the file are the archive (a member of a bigger tar, say). */
  constructor(
    private readonly fd: number,
    private readonly size: number,
    private readonly what: string,
    private readonly start = 0,
  ) {}

  private truncated(): BlockportError {
    return new BlockportError('ECORRUPT', `${this.what}: truncated (unexpected end after ${this.size} bytes)`);
  }

  /** Reads exactly `n` bytes at `at` into `into` (a short file is truncation). */
  private pread(into: Buffer, at: number, n: number): void {
    for (let got = 0; got < n; ) {
      const r = readSync(this.fd, into, got, n - got, this.start + at + got);
      if (r === 0) throw this.truncated();
      got += r;
    }
  }

  async read(n: number): Promise<Buffer | null> {
    if (n === 0) return EMPTY;
    if (this.position >= this.size) return null;
    if (this.position + n > this.size) throw this.truncated();
    if (n > WINDOW) {
      const big = Buffer.allocUnsafe(n);
      this.pread(big, this.position, n);
      this.position += n;
      return big;
    }
    let off = this.position - this.winAt;
    if (off < 0 || off + n > this.winLen) {
      this.winAt = this.position;
      this.winLen = Math.min(WINDOW, this.size - this.position);
      this.pread(this.win, this.position, this.winLen);
      off = 0;
    }
    this.position += n;
    return this.win.subarray(off, off + n);
  }

  async readExact(n: number): Promise<Buffer> {
    const b = await this.read(n);
    if (b === null) throw this.truncated();
    return b;
  }

  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      const b = Buffer.from(await this.readExact(Math.min(left, WINDOW)));
      left -= b.length;
      yield b;
    }
  }

  async skip(n: number): Promise<void> {
    if (this.position + n > this.size) throw this.truncated();
    this.position += n;
  }

  async readUpTo(n: number): Promise<Buffer> {
    const k = Math.min(n, this.size - this.position);
    if (k <= 0) return EMPTY;
    const b = Buffer.allocUnsafe(k);
    this.pread(b, this.position, k);
    this.position += k;
    return b;
  }
}
