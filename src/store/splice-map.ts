import { createHash, type Hash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { FileRange, Piece } from '../cas/copy-plan.js';
import { digestHex, type Digest } from '../digest/digest.js';
import type { SourceOf } from '../oci/image.js';

/**
 * A splice map is the copy plan of a verified block-form layer, kept so the next materialize copies
 * ranges instead of parsing the layer, its import entries and its folder blocks again (docs/spec.md
 * 11.1): on the node bench image that parsing was 2 s of main-thread time for 344 MB, while the copy
 * itself takes 0.3 s. The plan is a function of the layer's digest alone (its bytes name the
 * blocks, whose bytes fix every offset), so a map never goes stale; it is only used for a layer
 * whose record says its splice matched the diff_id.
 *
 * Records, in order: LITERAL (tag 1, u32 length, the bytes), RANGE (tag 2, the blob's 32-byte
 * sha256, f64 offset, f64 size: a range of that blob), then END (tag 0, f64 size of the standard
 * layer, sha256 of every byte before it). A map whose checksum or size does not match is ignored.
 */
const LITERAL = 1;
const RANGE = 2;
const END = 0;
const RANGE_LEN = 1 + 32 + 16;
/** Literal bytes gathered into one record at most (a header and its padding, runs of them). */
const LITERAL_RUN = 1 << 16;
const WINDOW = 1 << 20;


/** Writes a splice map as a plan passes through; the file is complete once the plan has ended. */
export class SpliceMapWriter {
  private fh?: fsp.FileHandle;
  private readonly hash: Hash = createHash('sha256');
  private out = Buffer.allocUnsafe(1 << 16);
  private fill = 0;
  private pos = 0;
  /** Literal bytes not written yet, copied here at once: a header is often a slice of a big read chunk, which a reference would keep alive. */
  private readonly literal = Buffer.allocUnsafe(LITERAL_RUN);
  private literalBytes = 0;
  private range?: { digest: Digest; offset: number; size: number };
  private total = 0;
  /** Set when the plan named a file that is no blob (the map is then not kept). */
  private unusable = false;
  complete = false;

  constructor(readonly tmp: string, private readonly sourceOf: SourceOf) {}

  /** Passes `pieces` through, writing them down. */
  async *tee(pieces: AsyncIterable<Piece>): AsyncGenerator<Piece> {
    this.fh = await fsp.open(this.tmp, 'wx', 0o644);
    for await (const p of pieces) {
      if (!this.unusable) await this.add(p);
      yield p;
    }
    await this.endRuns();
    const end = Buffer.alloc(1 + 8);
    end[0] = END;
    end.writeDoubleLE(this.total, 1);
    await this.put(end);
    const sum = this.hash.digest();
    await this.write(sum);
    await this.flush();
    await this.close();
    this.complete = !this.unusable;
  }

  private async add(p: Piece): Promise<void> {
    if (Buffer.isBuffer(p)) {
      if (p.length === 0) return;
      await this.endRange();
      for (let at = 0; at < p.length; ) {
        const n = Math.min(p.length - at, LITERAL_RUN - this.literalBytes);
        p.copy(this.literal, this.literalBytes, at, at + n);
        this.literalBytes += n;
        at += n;
        if (this.literalBytes === LITERAL_RUN) await this.endLiteral();
      }
      this.total += p.length;
      return;
    }
    if (p.size === 0) return;
    await this.endLiteral();
    const src = this.sourceOf(p.path);
    if (!src) {
      this.unusable = true;
      return;
    }
    const offset = p.offset - src.offset;
    this.total += p.size;
    const r = this.range;
    if (r && r.digest === src.digest && r.offset + r.size === offset) r.size += p.size;
    else {
      await this.endRange();
      this.range = { digest: src.digest, offset, size: p.size };
    }
  }

  private async endRuns(): Promise<void> {
    await this.endLiteral();
    await this.endRange();
  }

  private async endLiteral(): Promise<void> {
    if (this.literalBytes === 0) return;
    const head = Buffer.allocUnsafe(5);
    head[0] = LITERAL;
    head.writeUInt32LE(this.literalBytes, 1);
    await this.put(head);
    await this.put(this.literal.subarray(0, this.literalBytes));
    this.literalBytes = 0;
  }

  private async endRange(): Promise<void> {
    const r = this.range;
    if (!r) return;
    const rec = Buffer.allocUnsafe(RANGE_LEN);
    rec[0] = RANGE;
    rec.write(digestHex(r.digest), 1, 'hex');
    rec.writeDoubleLE(r.offset, 33);
    rec.writeDoubleLE(r.size, 41);
    await this.put(rec);
    this.range = undefined;
  }

  /** Bytes of the map (covered by its checksum). */
  private async put(b: Buffer): Promise<void> {
    this.hash.update(b);
    await this.write(b);
  }

  private async write(b: Buffer): Promise<void> {
    if (this.fill + b.length > this.out.length) await this.flush();
    if (b.length > this.out.length) {
      await this.fh!.write(b, 0, b.length, this.pos);
      this.pos += b.length;
      return;
    }
    b.copy(this.out, this.fill);
    this.fill += b.length;
  }

  private async flush(): Promise<void> {
    if (this.fill === 0) return;
    await this.fh!.write(this.out, 0, this.fill, this.pos);
    this.pos += this.fill;
    this.fill = 0;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  /** Closes and removes the file. */
  async discard(): Promise<void> {
    this.complete = false;
    await this.close().catch(() => {});
    await fsp.rm(this.tmp, { force: true });
  }
}

/**
 * The plan a splice map at `file` holds, its ranges in the blob files `blobPath` names and its
 * literal bytes as ranges of the map itself; undefined when there is no map, or it is damaged or
 * not `size` bytes long (the caller then splices the layer again). The map is checked whole
 * first (its checksum, then its records), so a damaged one is refused before any piece is used.
 */
export async function readSpliceMap(file: string, size: number, blobPath: (d: Digest) => string): Promise<AsyncIterable<Piece> | undefined> {
  const fh = await fsp.open(file, 'r').catch(() => undefined);
  if (!fh) return undefined;
  let good = false;
  try {
    good = (await checksumMatches(fh)) && (await scanned(fh, file, blobPath)) === size;
  } finally {
    if (!good) await fh.close();
  }
  if (!good) return undefined;
  return piecesOf(scan(fh, file, blobPath), () => fh.close());
}

/** The pieces of the batches, one promise per batch rather than a generator step per piece. */
function piecesOf(batches: AsyncGenerator<{ pieces: FileRange[] }>, close: () => Promise<void>): AsyncIterable<Piece> {
  let batch: FileRange[] = [];
  let k = 0;
  let closed = false;
  const finish = async () => {
    if (closed) return;
    closed = true;
    await batches.return(undefined);
    await close();
  };
  const iterator: AsyncIterator<Piece> = {
    async next() {
      while (k === batch.length) {
        const r = await batches.next();
        if (r.done) {
          await finish();
          return { done: true, value: undefined };
        }
        [batch, k] = [r.value.pieces, 0];
      }
      return { done: false, value: batch[k++] };
    },
    async return() {
      await finish();
      return { done: true, value: undefined };
    },
  };
  return { [Symbol.asyncIterator]: () => iterator };
}

/** Whether the map's last 32 bytes are the sha256 of the bytes before them. */
async function checksumMatches(fh: fsp.FileHandle): Promise<boolean> {
  const length = (await fh.stat()).size;
  if (length < 32) return false;
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(WINDOW);
  const body = length - 32;
  for (let pos = 0; pos < body; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(WINDOW, body - pos), pos);
    if (bytesRead === 0) return false;
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  const sum = Buffer.alloc(32);
  return (await fh.read(sum, 0, 32, body)).bytesRead === 32 && h.digest().equals(sum);
}

/** The size the map's pieces add up to when its records are well formed and END agrees, else -1. */
async function scanned(fh: fsp.FileHandle, file: string, blobPath: (d: Digest) => string): Promise<number> {
  for await (const batch of scan(fh, file, blobPath)) if (batch.end !== undefined) return batch.end;
  return -1;
}

/**
 * The map's pieces, a window of records at a time (parsed synchronously: a piece costs no
 * promise). The last batch carries `end`: the layer size when END is where it must be (last, and
 * agreeing with the pieces' sum); a map that breaks off or holds an unknown record has no `end`.
 */
async function* scan(fh: fsp.FileHandle, file: string, blobPath: (d: Digest) => string): AsyncGenerator<{ pieces: FileRange[]; end?: number }> {
  const buf = Buffer.allocUnsafe(WINDOW);
  const length = (await fh.stat()).size;
  const paths = new Map<string, string>();
  let total = 0;
  for (let pos = 0; ; ) {
    const { bytesRead } = await fh.read(buf, 0, WINDOW, pos);
    const pieces: FileRange[] = [];
    let at = 0;
    for (;;) {
      if (at >= bytesRead) break;
      const tag = buf[at];
      if (tag === END) {
        if (at + 9 > bytesRead) break;
        const end = pos + at + 9 + 32 === length && buf.readDoubleLE(at + 1) === total ? total : undefined;
        yield { pieces, end };
        return;
      }
      if (tag === LITERAL) {
        if (at + 5 > bytesRead) break;
        const n = buf.readUInt32LE(at + 1);
        pieces.push({ path: file, offset: pos + at + 5, size: n });
        total += n;
        at += 5 + n;
      } else if (tag === RANGE) {
        if (at + RANGE_LEN > bytesRead) break;
        const hex = buf.toString('hex', at + 1, at + 33);
        let path = paths.get(hex);
        if (path === undefined) paths.set(hex, (path = blobPath(`sha256:${hex}` as Digest)));
        const n = buf.readDoubleLE(at + 41);
        pieces.push({ path, offset: buf.readDoubleLE(at + 33), size: n });
        total += n;
        at += RANGE_LEN;
      } else {
        yield { pieces: [] };
        return;
      }
    }
    // a record cut by the window's end is read again from its start; none fits: the map breaks off
    if (at === 0 || pos + at >= length) {
      yield { pieces: [] };
      return;
    }
    yield { pieces };
    pos += at;
  }
}
