import { deflaterFor } from './deflater.js';
import { CHUNK } from '../chunk.js';
import type { FileRange } from './file-range.js';
import type { Segment } from './segments.js';

/** Thrown when the flat stream and the plan do not fit together; the caller words it as ECORRUPT. */
export class BadRebuild extends Error {}

/** Takes exact byte counts off an async stream of buffers. */
export class Taker {
  private it: AsyncIterator<Buffer>;
  private left: Buffer = Buffer.alloc(0);

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Yields exactly `n` bytes in pieces; BadRebuild when the stream ends first. */
  async *take(n: number): AsyncGenerator<Buffer> {
    while (n > 0) {
      if (this.left.length === 0) {
        const r = await this.it.next();
        if (r.done) throw new BadRebuild('the flat stream ends before the plan does');
        this.left = Buffer.from(r.value);
      }
      const piece = this.left.subarray(0, Math.min(n, this.left.length));
      this.left = this.left.subarray(piece.length);
      n -= piece.length;
      yield piece;
    }
  }

  /** Everything not taken yet. */
  async *rest(): AsyncGenerator<Buffer> {
    if (this.left.length > 0) yield this.left;
    this.left = Buffer.alloc(0);
    for (;;) {
      const r = await this.it.next();
      if (r.done) return;
      yield Buffer.from(r.value);
    }
  }

  async atEnd(): Promise<boolean> {
    if (this.left.length > 0) return false;
    for (;;) {
      const r = await this.it.next();
      if (r.done) return true;
      if (r.value.length > 0) return false;
    }
  }
}

async function* deflateSegment(s: Extract<Segment, { kind: 'deflate' }>, t: Taker): AsyncGenerator<Buffer> {
  const d = deflaterFor(s.params);
  let out: Buffer[] = [];
  let total = 0;
  const take = (c: Buffer) => {
    total += c.length;
    out.push(c);
  };
  const drain = function* () {
    if (total > s.compressedSize) throw new BadRebuild(`a deflate segment gives more than its ${s.compressedSize} bytes`);
    yield* out;
    out = [];
  };
  let finished = false;
  try {
    for await (const piece of t.take(s.size)) {
      d.push(piece, false, take);
      yield* drain();
    }
    d.push(new Uint8Array(0), true, take);
    finished = true;
  } finally {
    if (!finished) d.reset(); // failed or abandoned: the shared state must start the next stream clean
  }
  yield* drain();
  if (total !== s.compressedSize) throw new BadRebuild(`a deflate segment gives ${total} bytes where the plan says ${s.compressedSize}`);
}

/** Copies read the old zip synchronously: most are one small entry, and a promise per read cost more than the read. */
function* copySegment(s: Extract<Segment, { kind: 'copy' }>, base: FileRange): Generator<Buffer> {
  if (s.offset + s.length > base.size) throw new BadRebuild('a copy segment reaches past the end of the old zip');
  for (const piece of base.chunks(s.offset, s.length, CHUNK)) {
    if (piece.length === 0) throw new BadRebuild('the old zip is shorter than it was');
    yield piece;
  }
}

/**
 * Rebuilds a zip from its plan, its flat stream and the old zip (`base`),
 * yielding its bytes in order. Checks that every deflate segment gives exactly its compressed size
 * and that the flat stream ends with the plan; the caller checks the digest of the result.
 */
export async function* rebuildZip(segments: Segment[], flat: AsyncIterable<Buffer>, base: FileRange): AsyncGenerator<Buffer> {
  const t = new Taker(flat);
  for (const s of segments) {
    if (s.kind === 'raw') yield* t.take(s.length);
    else if (s.kind === 'copy') yield* copySegment(s, base);
    else yield* deflateSegment(s, t);
  }
  if (!(await t.atEnd())) throw new BadRebuild('the flat stream goes on after the plan ends');
}
