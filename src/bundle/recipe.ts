import { open, type FileHandle } from 'node:fs/promises';
import { Duplex, Readable } from 'node:stream';
import { CHUNK, coalesce } from '../chunk.js';
import type { Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { decompressor } from '../oci/compression.js';
import { ByteSource } from '../tar/bytes.js';
import type { BundleBlob } from './format.js';

/**
 * The recipe stream (docs/spec.md 14.9), before zstd: this magic line, then ops, each an opcode
 * byte and unsigned LEB128 varints: END; LITERAL len, then len bytes; COPY base offset len.
 */
export const RECIPE_MAGIC = Buffer.from('blockport recipe v1\n', 'latin1');
export const OP_END = 0;
export const OP_LITERAL = 1;
export const OP_COPY = 2;

/** Longest varint accepted: 8 bytes hold 56 bits, more than any safe integer. */
const MAX_VARINT = 8;

/** A base a recipe copies from, as the receiver holds it. */
export interface RecipeBase {
  digest: Digest;
  size: number;
  /** The receiver's file of the base. */
  path: string;
}

/** Unsigned LEB128 of a safe integer: 7 bits a byte, low bits first, the high bit set on all but the last. */
export function varint(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`varint of ${n}`);
  const out: number[] = [];
  do {
    const low = n % 128;
    n = Math.floor(n / 128);
    out.push(n > 0 ? low | 0x80 : low);
  } while (n > 0);
  return Buffer.from(out);
}

/** The head of a LITERAL op; its `len` bytes follow. */
export function literalOp(len: number): Buffer {
  return Buffer.concat([Buffer.of(OP_LITERAL), varint(len)]);
}

/** A COPY op: `len` bytes of base number `base` from `offset`. */
export function copyOp(base: number, offset: number, len: number): Buffer {
  return Buffer.concat([Buffer.of(OP_COPY), varint(base), varint(offset), varint(len)]);
}

export const END_OP = Buffer.of(OP_END);

function corrupt(what: string, msg: string): never {
  throw new BlockportError('ECORRUPT', `${what}: ${msg}`);
}

/** Reads one varint; refuses one that is truncated, longer than 8 bytes, not minimal or unsafe. */
async function readVarint(src: ByteSource, what: string): Promise<number> {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < MAX_VARINT; i++) {
    const b = await src.read(1);
    if (b === null) corrupt(what, 'recipe truncated inside an op');
    const byte = b[0];
    n += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) corrupt(what, 'recipe holds a varint that is not in its shortest form');
      if (!Number.isSafeInteger(n)) corrupt(what, 'recipe holds a number too large');
      return n;
    }
    scale *= 128;
  }
  corrupt(what, `recipe holds a varint longer than ${MAX_VARINT} bytes`);
}

/** Positional reads of the bases, each file opened once, all closed by `close`. */
class BaseFiles {
  private readonly handles = new Map<number, Promise<FileHandle>>();
  constructor(private readonly bases: RecipeBase[], private readonly what: string) {}

  async *read(index: number, offset: number, len: number): AsyncGenerator<Buffer> {
    const base = this.bases[index];
    if (!this.handles.has(index)) this.handles.set(index, open(base.path, 'r'));
    const fh = await this.handles.get(index)!;
    for (let done = 0; done < len;) {
      const n = Math.min(CHUNK, len - done);
      const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(n), 0, n, offset + done);
      if (bytesRead < n) corrupt(this.what, `base ${base.digest} ends before byte ${offset + done + n} (the store's copy is damaged)`);
      done += n;
      yield buffer;
    }
  }

  async close(): Promise<void> {
    for (const p of this.handles.values()) await p.then((fh) => fh.close(), () => {});
  }
}

/**
 * Runs the ops of a recipe stream (decompressed) and yields the blob's bytes, reading copies from
 * `bases`. Refuses (ECORRUPT) a bad magic line, an unknown op, an empty op, a base index out of
 * range, a copy outside its base, output beyond `size`, a missing END, bytes after END and an
 * output shorter than `size`. The output is not verified here: the caller checks its digest.
 */
export async function* decodeRecipe(source: AsyncIterable<Buffer>, bases: RecipeBase[], size: number, what: string): AsyncGenerator<Buffer> {
  const src = new ByteSource(source, what);
  const magic = await src.read(RECIPE_MAGIC.length);
  if (!magic?.equals(RECIPE_MAGIC)) corrupt(what, 'not a blockport recipe (bad magic line)');
  const files = new BaseFiles(bases, what);
  let out = 0;
  const grow = (len: number) => {
    if (len === 0) corrupt(what, 'recipe holds an empty op');
    if (out + len > size) corrupt(what, `recipe gives more than the blob's ${size} bytes`);
    out += len;
  };
  try {
    for (;;) {
      const op = await src.read(1);
      if (op === null) corrupt(what, 'recipe truncated (no END op)');
      if (op[0] === OP_END) break;
      if (op[0] === OP_LITERAL) {
        const len = await readVarint(src, what);
        grow(len);
        yield* src.take(len);
      } else if (op[0] === OP_COPY) {
        const base = await readVarint(src, what);
        const offset = await readVarint(src, what);
        const len = await readVarint(src, what);
        if (base >= bases.length) corrupt(what, `recipe copies from base ${base}; the blob names ${bases.length}`);
        if (offset + len > bases[base].size) corrupt(what, `recipe copies bytes ${offset}-${offset + len} of base ${bases[base].digest}, which has ${bases[base].size}`);
        grow(len);
        yield* files.read(base, offset, len);
      } else corrupt(what, `recipe holds an unknown op ${op[0]} at byte ${src.position - 1}`);
    }
    if ((await src.read(1)) !== null) corrupt(what, 'recipe holds bytes after its END op');
    if (out !== size) corrupt(what, `recipe gives ${out} bytes; the blob has ${size}`);
  } finally {
    await files.close();
  }
}

/**
 * The transform that decodes a `recipe` member (zstd frames of a recipe stream) into its blob,
 * copying from the receiver's files of the blob's `bases` (`basePath`). Bounded memory: literals
 * stream through, copies are read in pieces of at most CHUNK bytes.
 */
export function recipeDecoder(blob: BundleBlob, what: string, basePath?: (d: Digest) => string): Duplex {
  if (!basePath || !blob.bases) throw new BlockportError('EUNSUPPORTED', `${what}: a recipe needs the blobs it copies from (${blob.bases?.length ?? 0} bases), and no store was given`);
  const bases = blob.bases.map((b) => ({ digest: b.digest, size: b.size, path: basePath(b.digest) }));
  const unzstd = decompressor('zstd', what)!;
  const out = Readable.from(coalesce(decodeRecipe(unzstd, bases, blob.size, what)), { objectMode: false, highWaterMark: CHUNK });
  const d = Duplex.from({ writable: unzstd, readable: out });
  d.on('close', () => unzstd.destroy());
  return d;
}
