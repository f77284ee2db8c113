import { pipeline, type Readable } from 'node:stream';
import { BlockportError } from '../errors.js';
import { peek } from '../chunk.js';
import { parseGzipHeader, parseZstdHeader } from './headers.js';
import { describeRecipe, type GzipEngine, type Recipe } from './recipe.js';
import { recompressor } from './recompressor.js';
import { sameBytes } from './same-bytes.js';

/** A compressed blob and its uncompressed bytes, each re-openable from its first byte. */
export interface RecipeSource {
  openCompressed(): Promise<Readable>;
  openUncompressed(): Promise<Readable>;
  /** Length of the uncompressed bytes (zstd records it in the frame header). */
  uncompressedSize: number;
  /** For messages: the layer's digest or name. */
  what: string;
}

/** One candidate tried: how many bytes it matched and how long it ran. */
export interface Attempt {
  recipe: string;
  matched: number;
  ms: number;
  /** Why it could not run (its tool absent), when it did not. */
  error?: string;
}

export interface RecipeSearch {
  /** The compressor that re-created every byte, when one did. */
  recipe?: Recipe;
  /** Why none did, for the user. */
  reason?: string;
  attempts: Attempt[];
}

/** Level order when the gzip header's XFL byte gives no hint: 6 is every tool's default. */
const MIDDLE_LEVELS = [6, 5, 4, 7, 8, 3, 2];
const GZIP_ENGINES: GzipEngine[] = ['gnu-gzip', 'zlib', 'node-zlib'];
/** zstd's default window log per level for inputs over 256 KiB (zstd 1.5 clevels.h), to try likely levels first. */
const ZSTD_WINDOW_LOG = [0, 19, 20, 21, 21, 21, 21, 21, 22, 22, 22, 22, 22, 22, 22, 22, 22, 23, 23, 23, 25, 26, 27];

/**
 * The compressors worth trying for a blob whose first bytes are `head`, likeliest first; or why
 * none is. Go's compress/gzip (docker, buildkit, crane, umoci, skopeo) writes OS byte 255 and has
 * no reproduction here, so such layers are reported at once rather than tried for nothing.
 */
export function candidatesFor(head: Buffer): { candidates: Recipe[]; reason?: string } {
  const gz = parseGzipHeader(head);
  if (gz) {
    if (gz.os === 255) return { candidates: [], reason: 'made by a Go gzip writer (header OS byte 255: docker, buildkit, skopeo, umoci), which no available compressor reproduces' };
    const levels = gz.xfl === 2 ? [9] : gz.xfl === 4 ? [1] : MIDDLE_LEVELS;
    const header = head.subarray(0, gz.length);
    return { candidates: levels.flatMap((level) => GZIP_ENGINES.map((engine) => ({ format: 'gzip', engine, level, header }) as Recipe)) };
  }
  const zs = parseZstdHeader(head);
  if (zs) {
    if (zs.dictionary) return { candidates: [], reason: 'a zstd frame made with a dictionary' };
    const long = zs.windowLog !== undefined && zs.windowLog >= 27 ? zs.windowLog : 0;
    const levels = Array.from({ length: 22 }, (_, i) => i + 1);
    const likely = (l: number) => (l === 3 ? -1 : ZSTD_WINDOW_LOG[l] === zs.windowLog ? 0 : 1);
    levels.sort((a, b) => likely(a) - likely(b) || a - b);
    return {
      candidates: levels.flatMap((level) =>
        [false, true].map((singleThread) => ({ format: 'zstd', engine: 'zstd-cli', level, contentSize: zs.contentSize, checksum: zs.checksum, long, singleThread }) as Recipe),
      ),
    };
  }
  return { candidates: [], reason: 'neither a gzip member nor a zstd frame' };
}

/** Runs one candidate against the blob, stopping at the first byte that differs. */
async function attempt(src: RecipeSource, r: Recipe): Promise<Attempt> {
  const t0 = performance.now();
  const input = await src.openUncompressed();
  const out = pipeline(input, recompressor(r, src.uncompressedSize, `recompress ${src.what}`), () => {});
  try {
    const c = await sameBytes(out, await src.openCompressed());
    return { recipe: describeRecipe(r), matched: c.equal ? -1 : c.matched, ms: performance.now() - t0 };
  } catch (err) {
    if (err instanceof BlockportError && err.code === 'ETOOL') return { recipe: describeRecipe(r), matched: 0, ms: performance.now() - t0, error: err.message };
    throw err;
  }
}

/**
 * Finds a compressor that re-creates the blob byte for byte from its uncompressed bytes (the
 * first candidate that matches to the last byte), or says why there is none. Each candidate
 * streams; a wrong one stops at its first differing byte; an engine whose tool is absent is skipped.
 */
export async function findRecipe(src: RecipeSource, opts: { signal?: AbortSignal } = {}): Promise<RecipeSearch> {
  const { head, stream } = await peek(await src.openCompressed(), 64 << 10);
  stream.destroy();
  const { candidates, reason } = candidatesFor(head);
  const attempts: Attempt[] = [];
  const broken = new Set<string>();
  for (const r of candidates) {
    opts.signal?.throwIfAborted();
    if (broken.has(r.engine)) continue;
    const a = await attempt(src, r);
    attempts.push(a);
    if (a.error) broken.add(r.engine);
    if (a.matched === -1) return { recipe: r, attempts };
  }
  const best = attempts.reduce((m, a) => Math.max(m, a.matched), 0);
  return { reason: reason ?? `no candidate compressor re-creates it (${attempts.length} tried; the closest matched its first ${best} bytes)`, attempts };
}
