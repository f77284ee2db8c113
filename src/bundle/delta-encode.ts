import { createWriteStream, promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex, type Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/types.js';
import type { DeltaCandidate } from './delta.js';
import type { BlobSource } from './encode.js';
import { BlockportError } from '../errors.js';
import { blobMember, type BundleBlob, type BundlePrerequisite, type DeltaEncoding } from './format.js';
import { encodePatch, encodeVcdiff, patchEncoding, ZSTD_PATCH_LIMIT } from './patch.js';
import { CHUNK } from '../chunk.js';
import { isBlock } from '../oci/media-types.js';
import { encodeZipDelta, zipDeltasEnabled, type ZipDeltaResult } from './delta-zip.js';

/** A delta that was computed: its candidate, how it was encoded and the size of the patch left in the work folder. */
export interface DeltaResult {
  candidate: DeltaCandidate;
  encoding: DeltaEncoding;
  storedSize: number;
  /** For a zip delta: how its entries were planned. */
  zip?: ZipDeltaResult;
}

/** Where a blob's patch is written in the work folder: its member's file name. */
export function patchPath(dir: string, d: Pick<BundleBlob, 'digest'> & { encoding: DeltaEncoding }): string {
  return join(dir, basename(blobMember(d)));
}

/** base + blob bytes from which deltas are VCDIFF: ZSTD_PATCH_LIMIT, or BLOCKPORT_ZSTD_PATCH_LIMIT when set. */
export function zstdPatchLimit(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.BLOCKPORT_ZSTD_PATCH_LIMIT;
  if (v === undefined || v === '') return ZSTD_PATCH_LIMIT;
  if (!/^\d+$/.test(v)) throw new BlockportError('EUSAGE', `BLOCKPORT_ZSTD_PATCH_LIMIT must be a number of bytes, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** The blob as a file zstd or xdelta3 can read: the source's own file after a verified read, else a verified copy in `dir`. */
async function fileOf(d: Descriptor, src: BlobSource, dir: string): Promise<{ path: string; copy: boolean }> {
  const own = src.path?.(d);
  if (own && own.endsWith(`/${digestHex(d.digest)}`)) {
    await pipeline(await src.open(d), new Writable({ write: (_c, _e, cb) => cb() }));
    return { path: own, copy: false };
  }
  const path = join(dir, `${digestHex(d.digest)}.blob`);
  await pipeline(await src.open(d), createWriteStream(path, { highWaterMark: CHUNK }));
  return { path, copy: true };
}

/** zstd or xdelta3 runs at once: both are single-threaded here, and this machine class has two cores. */
const WORKERS = 2;

export interface EncodeDeltasOptions {
  onBlob?: (d: Descriptor) => void;
  signal?: AbortSignal;
  /** Pairs of this many bytes (base + blob) or more are VCDIFF (default zstdPatchLimit()). */
  zstdLimit?: number;
  /** Also try zip deltas for blocks that are zips, keeping the smaller (default zipDeltasEnabled()). */
  zip?: boolean;
}

/** The zip delta of a candidate when its blob is a zip and the delta is made (see encodeZipDelta); its member file is left in `dir`. */
async function tryZipDelta(c: DeltaCandidate, base: string, target: string, dir: string, limit: number): Promise<DeltaResult | undefined> {
  const to = patchPath(dir, { digest: c.blob.digest, encoding: 'zip-delta' });
  const r = await encodeZipDelta({ path: base, size: c.base.size }, { path: target, size: c.blob.size }, to, { what: `zip delta of ${c.blob.digest}`, zstdLimit: limit });
  return r && { candidate: c, encoding: 'zip-delta', storedSize: r.storedSize, zip: r };
}

/**
 * Encodes each candidate against its base into `dir`: a zstd patch, or VCDIFF for big pairs (see
 * patchEncoding; at most WORKERS processes; blobs are never held in memory), reading new blobs from
 * `blobs` and bases from `bases`. Every input is verified before the tool reads it; copies made
 * for sources without files are removed before returning.
 */
export async function encodeDeltas(cands: DeltaCandidate[], blobs: BlobSource, bases: BlobSource, dir: string, opts: EncodeDeltasOptions = {}): Promise<Map<Digest, DeltaResult>> {
  const limit = opts.zstdLimit ?? zstdPatchLimit();
  const zip = opts.zip ?? zipDeltasEnabled();
  const out = new Map<Digest, DeltaResult>();
  const baseFiles = new Map<Digest, Promise<{ path: string; copy: boolean }>>();
  const one = async (c: DeltaCandidate) => {
    if (!baseFiles.has(c.base.digest)) baseFiles.set(c.base.digest, fileOf(c.base, bases, dir));
    const base = await baseFiles.get(c.base.digest)!;
    const target = await fileOf(c.blob, blobs, dir);
    const encoding = patchEncoding(c.base.size, c.blob.size, limit);
    const to = patchPath(dir, { digest: c.blob.digest, encoding });
    const what = `delta of ${c.blob.digest}`;
    try {
      const storedSize = encoding === 'vcdiff'
        ? await encodeVcdiff(base, target, to, what)
        : await encodePatch({ path: base.path, size: c.base.size }, { path: target.path, size: c.blob.size }, to, what);
      out.set(c.blob.digest, { candidate: c, encoding, storedSize });
      if (zip && isBlock(c.blob.mediaType)) {
        const zipped = await tryZipDelta(c, base.path, target.path, dir, limit);
        if (zipped && zipped.storedSize < storedSize) {
          await fsp.rm(to, { force: true });
          out.set(c.blob.digest, zipped);
        }
      }
    } finally {
      if (target.copy) await fsp.rm(target.path, { force: true });
    }
    opts.onBlob?.(c.blob);
  };
  let next = 0;
  let stop = false;
  const worker = async () => {
    try {
      while (!stop && next < cands.length) {
        opts.signal?.throwIfAborted();
        await one(cands[next++]);
      }
    } catch (err) {
      stop = true; // the other worker finishes its run, then stops
      throw err;
    }
  };
  try {
    const runs = await Promise.allSettled(Array.from({ length: Math.min(WORKERS, cands.length) }, worker));
    const failed = runs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } finally {
    for (const f of await Promise.allSettled(baseFiles.values())) if (f.status === 'fulfilled' && f.value.copy) await fsp.rm(f.value.path, { force: true });
  }
  return out;
}

/**
 * Swaps in the deltas that are smaller than a blob's plain encoding (zstd or none), and returns
 * the bases they need (the receiver must hold them: they become prerequisites). Patches not used
 * are deleted; so is the plain encoding a delta replaces (`plainPath`).
 */
export async function preferDeltas(blobs: BundleBlob[], deltas: Map<Digest, DeltaResult>, dir: string, plainPath: (b: BundleBlob) => string): Promise<{ blobs: BundleBlob[]; bases: BundlePrerequisite[] }> {
  const bases = new Map<Digest, BundlePrerequisite>();
  const out: BundleBlob[] = [];
  for (const b of blobs) {
    const d = deltas.get(b.digest);
    if (!d) {
      out.push(b);
      continue;
    }
    if (d.storedSize >= b.storedSize) {
      await fsp.rm(patchPath(dir, { digest: b.digest, encoding: d.encoding }), { force: true });
      out.push(b);
      continue;
    }
    if (b.encoding !== 'none') await fsp.rm(plainPath(b), { force: true });
    const base = { digest: d.candidate.base.digest, size: d.candidate.base.size };
    bases.set(base.digest, base);
    out.push({ digest: b.digest, size: b.size, mediaType: b.mediaType, encoding: d.encoding, base, storedSize: d.storedSize });
  }
  return { blobs: out, bases: [...bases.values()] };
}
