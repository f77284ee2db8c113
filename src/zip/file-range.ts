import { readSync } from 'node:fs';

/**
 * A byte range of an open file read by position: a zip, or a zip stored inside one (a fat jar's
 * nested jar). Reads are synchronous: the zip code is CPU-bound (inflate, deflate) between small
 * positional reads, and never holds a whole archive in memory.
 */
export class FileRange {
  constructor(
    readonly fd: number,
    /** Where the range starts in the file. */
    readonly start: number,
    readonly size: number,
  ) {}

  /** `len` bytes at `pos` (relative to the range); fewer only at the range's end. */
  read(pos: number, len: number): Buffer {
    const n = Math.max(0, Math.min(len, this.size - pos));
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const r = readSync(this.fd, buf, got, n - got, this.start + pos + got);
      if (r === 0) break;
      got += r;
    }
    return got === n ? buf : buf.subarray(0, got);
  }

  /** The sub-range [pos, pos + size) of this range. */
  sub(pos: number, size: number): FileRange {
    return new FileRange(this.fd, this.start + pos, size);
  }

  /** Yields the range [pos, pos + len) in pieces of at most `chunk` bytes. */
  *chunks(pos: number, len: number, chunk = 1 << 18): Generator<Buffer> {
    for (let at = pos; at < pos + len; at += chunk) yield this.read(at, Math.min(chunk, pos + len - at));
  }
}
