import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { CHUNK } from '../chunk.js';
import { digestHex, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import type { Descriptor } from '../oci/types.js';
import { ByteSource } from '../tar/bytes.js';
import type { BlobSource } from './encode.js';
import type { BundleBlob, BundlePrerequisite } from './format.js';
import { END_OP, RECIPE_MAGIC, copyOp, literalOp } from './recipe.js';
import { blobRanges, closeBlob, indexHeld, isPlainTar, isRecipeKind, readBlob, wantedOf, type BlobRange, type Placement } from './recipe-index.js';

/** The blobs the receiver holds that recipes may copy from, and where the sender reads them. */
export interface RecipeBases {
  blobs: Descriptor[];
  source: BlobSource;
}

/** A recipe that was built: the blob, the bases it copies from, its member's size, the bytes it copies. */
export interface RecipeResult {
  blob: Descriptor;
  bases: BundlePrerequisite[];
  storedSize: number;
  copied: number;
}

/** Blobs smaller than this travel as they are. */
const MIN_RECIPE = 4096;
/** A recipe is built only when it copies at least this much: else zstd of the blob does as well. */
const MIN_COPIED = 4096;
/**
 * zstd level for recipe streams of `bytes` in all. Their literals are the new files and the tar
 * headers, where a high level pays, but -19 runs at 1.3-1.8 MB/s. Measured with zstd 1.5.4 (both
 * with --long=25): a 5 MB stream of JRE files -19 1.51 MB in 2.8 s, -9 1.69 MB in 0.25 s; an 18 MB
 * one of npm packages -19 1.44 MB in 14 s, -9 1.68 MB in 0.5 s (-9 without --long: 2.52 MB).
 */
export function recipeLevel(bytes: number): number {
  return bytes <= 8 << 20 ? 19 : 9;
}
/** zstd runs at once (two cores on this machine class). */
const WORKERS = 2;

/** A blob a recipe may be built for: a plain tar or a file block, not tiny. */
export function isRecipeCandidate(d: Descriptor): boolean {
  return isRecipeKind(d.mediaType) && d.size >= MIN_RECIPE;
}

/** Where a blob's recipe member is written in the work folder. */
export function recipePath(dir: string, d: Pick<Descriptor, 'digest'>): string {
  return join(dir, `${digestHex(d.digest)}.recipe`);
}

function opsPath(dir: string, d: Pick<Descriptor, 'digest'>): string {
  return join(dir, `${digestHex(d.digest)}.ops`);
}

/** One COPY of the recipe: `size` bytes at `at` in the new blob, found at `offset` in `base`. */
interface Copy {
  at: number;
  size: number;
  base: Descriptor;
  offset: number;
}

/** The place for a range: the one continuing the previous copy, else a base already used, else the first. */
function pick(places: Placement[], r: BlobRange, prev: Copy | undefined, used: Set<Digest>): Placement {
  const next = prev && prev.at + prev.size === r.at ? places.find((p) => p.base.digest === prev.base.digest && p.offset === prev.offset + prev.size) : undefined;
  return next ?? places.find((p) => used.has(p.base.digest)) ?? places[0];
}

/**
 * The copies for a blob's ranges (in blob order): whole entries first, else their file data;
 * runs contiguous in one base merge into one copy.
 */
export function planCopies(ranges: BlobRange[], index: Map<string, Placement[]>): Copy[] {
  const out: Copy[] = [];
  const used = new Set<Digest>();
  let end = 0;
  for (const r of ranges) {
    const places = r.at >= end ? index.get(r.key) : undefined;
    if (!places) continue;
    const prev = out.at(-1);
    const p = pick(places, r, prev, used);
    used.add(p.base.digest);
    end = r.at + r.size;
    if (prev && prev.at + prev.size === r.at && prev.base.digest === p.base.digest && prev.offset + prev.size === p.offset) prev.size += r.size;
    else out.push({ at: r.at, size: r.size, base: p.base, offset: p.offset });
  }
  return out;
}

/** The recipe stream of a blob: literals read from `blob` (verified as read), COPY ops for `copies`. */
async function* opStream(blob: AsyncIterable<Buffer>, size: number, copies: Copy[], bases: Digest[], what: string): AsyncGenerator<Buffer> {
  const src = new ByteSource(blob, what);
  yield RECIPE_MAGIC;
  let pos = 0;
  for (const c of copies) {
    if (c.at > pos) {
      yield literalOp(c.at - pos);
      yield* src.take(c.at - pos);
    }
    await src.skip(c.size);
    yield copyOp(bases.indexOf(c.base.digest), c.offset, c.size);
    pos = c.at + c.size;
  }
  if (size > pos) {
    yield literalOp(size - pos);
    yield* src.take(size - pos);
  }
  // reading to the end completes the verification of the blob's digest
  if ((await src.read(1)) !== null) throw new BlockportError('EDIGEST', `${what}: longer than ${size} bytes`);
  yield END_OP;
}

async function writeAll(fh: FileHandle, b: Buffer): Promise<void> {
  for (let done = 0; done < b.length;) done += (await fh.write(b, done, b.length - done)).bytesWritten;
}

/**
 * Writes `pieces` to `path` through one reused buffer. Each piece is copied or written before the
 * next is asked for, so pieces may be slices of buffers their producer reuses (readBlob's).
 */
async function writePieces(path: string, pieces: AsyncIterable<Buffer>): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafeSlow(CHUNK);
    let n = 0;
    for await (const p of pieces) {
      if (n > 0 && (n + p.length > CHUNK || p.length > CHUNK / 2)) {
        await writeAll(fh, buf.subarray(0, n));
        n = 0;
      }
      if (p.length > CHUNK / 2) await writeAll(fh, p);
      else n += p.copy(buf, n);
    }
    if (n > 0) await writeAll(fh, buf.subarray(0, n));
  } finally {
    await fh.close();
  }
}

/** Writes the (uncompressed) recipe of `d` to the work folder; returns its bases in index order. */
async function writeOps(d: Descriptor, src: BlobSource, copies: Copy[], dir: string): Promise<BundlePrerequisite[]> {
  const bases: BundlePrerequisite[] = [];
  for (const c of copies) if (!bases.some((b) => b.digest === c.base.digest)) bases.push({ digest: c.base.digest, size: c.base.size });
  const blob = await readBlob(d, src);
  try {
    await writePieces(opsPath(dir, d), opStream(blob, d.size, copies, bases.map((b) => b.digest), `blob ${d.digest}`));
  } finally {
    await closeBlob(blob);
  }
  return bases;
}

/** Compresses op files with zstd (one run per list: zstd adapts its tables to each file's size). */
function compressOps(files: string[], dir: string, level: number): Promise<void> {
  if (files.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    // -19's match tables capped as for patches (patch.ts): 93 -> 23 MB RSS, the output 0.5% larger.
    // --long=25: repeats further apart than the level's window (npm packages in two versions) are
    // found; decoding then needs a window of 32 MiB at most (the readers allow 2^31).
    const tables = level >= 17 ? ['--zstd=hlog=20,clog=21'] : [];
    const args = [`-${level}`, ...tables, '--long=25', '-q', '-f', '--rm', '--output-dir-flat', dir, '--', ...files];
    const child = spawn('zstd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b));
    child.on('error', (e) => reject(new BlockportError('ETOOL', `building recipes needs the 'zstd' command (${e.message})`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new BlockportError('ETOOL', `zstd failed: ${err.trim().split('\n').pop()}`))));
  });
}

export interface EncodeRecipesOptions {
  /** Bytes hashed and read so far, of all the reads building recipes takes. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
  /** zstd level (default recipeLevel() of the streams' total size). */
  level?: number;
}

interface Built {
  d: Descriptor;
  bases: BundlePrerequisite[];
  copied: number;
}

/** Compresses the op files of `built` (two zstd runs at once, big streams spread) into HEX.recipe members. */
async function compressAll(built: Built[], dir: string, level?: number): Promise<Map<Digest, RecipeResult>> {
  const lists: string[][] = Array.from({ length: WORKERS }, () => []);
  [...built].sort((a, b) => b.d.size - b.copied - (a.d.size - a.copied)).forEach((b, i) => lists[i % WORKERS].push(opsPath(dir, b.d)));
  const bytes = (await Promise.all(built.map((b) => fsp.stat(opsPath(dir, b.d))))).reduce((n, st) => n + st.size, 0);
  await Promise.all(lists.map((l) => compressOps(l, dir, level ?? recipeLevel(bytes))));
  const out = new Map<Digest, RecipeResult>();
  for (const b of built) {
    await fsp.rename(`${opsPath(dir, b.d)}.zst`, recipePath(dir, b.d));
    const { size } = await fsp.stat(recipePath(dir, b.d));
    out.set(b.d.digest, { blob: b.d, bases: b.bases, storedSize: size, copied: b.copied });
  }
  return out;
}

/**
 * Builds a recipe for each blob of `send` that is a plain tar or a file block and shares content
 * (a whole tar entry, a file's data, a whole file block) with the held blobs, in `dir` as
 * HEX.recipe. Memory holds the ranges' hashes, never a blob: each new blob is read twice (hash,
 * then literals), each held tar once.
 */
export async function encodeRecipes(send: Descriptor[], src: BlobSource, held: RecipeBases, dir: string, opts: EncodeRecipesOptions = {}): Promise<Map<Digest, RecipeResult>> {
  const sending = new Set(send.map((d) => d.digest));
  const bases = held.blobs.filter((h) => !sending.has(h.digest)); // a blob is never its own base
  const cands = send.filter(isRecipeCandidate);
  if (cands.length === 0 || bases.length === 0) return new Map();
  const sum = (ds: Descriptor[]) => ds.reduce((n, d) => n + d.size, 0);
  const total = 2 * sum(cands) + sum(bases.filter((h) => isPlainTar(h.mediaType)));
  let done = 0;
  const onBlob = (d: Descriptor) => opts.onProgress?.((done += d.size), total);
  const ranges = new Map<Digest, BlobRange[]>();
  for (const d of cands) {
    opts.signal?.throwIfAborted();
    ranges.set(d.digest, await blobRanges(d, src));
    onBlob(d);
  }
  const wanted = wantedOf([...ranges.values()].flat());
  const index = await indexHeld(bases, held.source, wanted, { signal: opts.signal, onBlob });
  const built: Built[] = [];
  for (const d of cands) {
    opts.signal?.throwIfAborted();
    const copies = planCopies(ranges.get(d.digest)!, index);
    ranges.delete(d.digest);
    const copied = copies.reduce((n, c) => n + c.size, 0);
    if (copied >= MIN_COPIED) built.push({ d, bases: await writeOps(d, src, copies, dir), copied });
    onBlob(d);
  }
  return compressAll(built, dir, opts.level);
}

/**
 * Swaps in each recipe smaller than its blob's current member (none, zstd or a delta), deleting
 * the member file it replaces (`memberFile`) and every recipe not used.
 */
export async function preferRecipes(blobs: BundleBlob[], recipes: Map<Digest, RecipeResult>, dir: string, memberFile: (b: BundleBlob) => string | undefined): Promise<BundleBlob[]> {
  const out: BundleBlob[] = [];
  for (const b of blobs) {
    const r = recipes.get(b.digest);
    if (!r || r.storedSize >= b.storedSize) {
      if (r) await fsp.rm(recipePath(dir, b), { force: true });
      out.push(b);
      continue;
    }
    const old = memberFile(b);
    if (old) await fsp.rm(old, { force: true });
    out.push({ digest: b.digest, size: b.size, mediaType: b.mediaType, encoding: 'recipe', bases: r.bases, storedSize: r.storedSize });
  }
  return out;
}

/** Every blob a bundle's members are decoded against (delta bases, recipe bases), once each. */
export function basesOf(blobs: BundleBlob[]): BundlePrerequisite[] {
  const out = new Map<Digest, BundlePrerequisite>();
  for (const b of blobs) for (const x of [...(b.base ? [b.base] : []), ...(b.bases ?? [])]) out.set(x.digest, x);
  return [...out.values()];
}

/**
 * For writeBundle: builds recipes for `blobs` against `held` (when given) and keeps those smaller
 * than each blob's member; returns the blobs and every base the members now need.
 */
export async function withRecipes(blobs: BundleBlob[], src: BlobSource, dir: string, held: RecipeBases | undefined, memberFile: (b: BundleBlob) => string | undefined, opts: EncodeRecipesOptions = {}): Promise<{ blobs: BundleBlob[]; bases: BundlePrerequisite[] }> {
  if (!held) return { blobs, bases: basesOf(blobs) };
  const send = blobs.map((b) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size }));
  const out = await preferRecipes(blobs, await encodeRecipes(send, src, held, dir, opts), dir, memberFile);
  return { blobs: out, bases: basesOf(out) };
}
