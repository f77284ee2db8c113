import { createWriteStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex, type Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/types.js';
import type { DeltaCandidate } from './delta.js';
import type { BlobSource } from './encode.js';
import type { BundleBlob, BundlePrerequisite } from './format.js';
import { encodePatch } from './patch.js';
import { CHUNK } from '../chunk.js';

/** A delta that was computed: its candidate and the size of the patch left in the work folder. */
export interface DeltaResult {
  candidate: DeltaCandidate;
  storedSize: number;
}

/** Where a blob's patch is written in the work folder. */
export function patchPath(dir: string, d: Pick<Descriptor, 'digest'>): string {
  return join(dir, `${digestHex(d.digest)}.zst-patch`);
}

/** The blob as a file zstd can read: the source's own file after a verified read, else a verified copy in `dir`. */
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

/** zstd runs at once: patch-from is single-threaded, and this machine class has two cores. */
const WORKERS = 2;

/**
 * Encodes each candidate as a zstd patch against its base into `dir` (at most WORKERS zstd
 * processes; blobs are never held in memory), reading new blobs from `blobs` and bases from
 * `bases`. Every input is verified before zstd reads it; copies made for sources without files
 * are removed before returning.
 */
export async function encodeDeltas(cands: DeltaCandidate[], blobs: BlobSource, bases: BlobSource, dir: string, opts: { onBlob?: (d: Descriptor) => void; signal?: AbortSignal } = {}): Promise<Map<Digest, DeltaResult>> {
  const out = new Map<Digest, DeltaResult>();
  const baseFiles = new Map<Digest, Promise<{ path: string; copy: boolean }>>();
  const one = async (c: DeltaCandidate) => {
    if (!baseFiles.has(c.base.digest)) baseFiles.set(c.base.digest, fileOf(c.base, bases, dir));
    const base = await baseFiles.get(c.base.digest)!;
    const target = await fileOf(c.blob, blobs, dir);
    try {
      const storedSize = await encodePatch({ path: base.path, size: c.base.size }, { path: target.path, size: c.blob.size }, patchPath(dir, c.blob), `delta of ${c.blob.digest}`);
      out.set(c.blob.digest, { candidate: c, storedSize });
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
      stop = true; // the other worker finishes its zstd run, then stops
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
      await fsp.rm(patchPath(dir, b), { force: true });
      out.push(b);
      continue;
    }
    if (b.encoding !== 'none') await fsp.rm(plainPath(b), { force: true });
    const base = { digest: d.candidate.base.digest, size: d.candidate.base.size };
    bases.set(base.digest, base);
    out.push({ digest: b.digest, size: b.size, mediaType: b.mediaType, encoding: 'zstd-patch', base, storedSize: d.storedSize });
  }
  return { blobs: out, bases: [...bases.values()] };
}
