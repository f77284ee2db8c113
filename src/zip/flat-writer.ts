import { writeSync } from 'node:fs';

/** Appends to a file through a buffer (the flat forms are written by the sync zip code). */
export class FlatWriter {
  private buf = Buffer.allocUnsafe(1 << 20);
  private n = 0;
  /** Bytes written so far. */
  length = 0;

  constructor(private readonly fd: number) {}

  write(b: Buffer): void {
    this.length += b.length;
    if (this.n + b.length > this.buf.length) this.flush();
    if (b.length >= this.buf.length) this.all(b);
    else {
      b.copy(this.buf, this.n);
      this.n += b.length;
    }
  }

  flush(): void {
    this.all(this.buf.subarray(0, this.n));
    this.n = 0;
  }

  private all(b: Buffer): void {
    for (let at = 0; at < b.length;) at += writeSync(this.fd, b, at, b.length - at);
  }
}
