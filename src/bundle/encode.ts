import { spawn } from 'node:child_process';
import { createWriteStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestHex } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { compressor } from '../oci/compression.js';
import { compressionOf } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import type { BundleBlob } from './format.js';
import { CHUNK } from '../chunk.js';

/** Where a bundle's blobs come from: verified streams, and the file behind a blob when there is one. */
export interface BlobSource {
  open(d: Descriptor): Promise<Readable>;
  /** The blob's file (a store or layout keeps blobs as files): lets one zstd run compress many. */
  path?(d: Descriptor): string | undefined;
}

/** Files per zstd run: one process start per blob costs more than compressing a small blob. */
const BATCH = 256;

/** The file name a compressed blob gets in the work folder. */
export function encodedPath(dir: string, d: Pick<Descriptor, 'digest'>): string {
  return join(dir, `${digestHex(d.digest)}.zst`);
}

/** Compressed already by its format (gzip/zstd layers) or too small to gain: stored as is. */
function worthTrying(d: Descriptor): boolean {
  return compressionOf(d.mediaType) === 'none' && d.size >= 128;
}

/** Compresses one blob from its stream into the work folder. */
async function compressStream(d: Descriptor, src: BlobSource, dir: string): Promise<void> {
  await pipeline([await src.open(d), compressor('zstd', `compressing ${d.digest}`)!, createWriteStream(encodedPath(dir, d), { highWaterMark: CHUNK })] as unknown as NodeJS.ReadWriteStream[]);
}

/**
 * zstd level for a blob. Measured on the bench upgrades (bundle bytes, time on 2 cores): -3 java
 * v1->v3 82.0 MB / teams 37.5 MB, -6 77.7 / 37.35, -9 75.3 / 37.28, -12 74.7 / 37.27 but its
 * zstd child peaks at 214 MB RSS. Most bytes are jars: zstd finds little in their heads and more
 * further in, so every blob is tried and the smaller of plain and compressed is kept. Large blobs
 * take -6: the 129 MB JRE `modules` costs 5.6 s at -9 for 4% less than -6 (2.5 s).
 */
export function blobLevel(size: number): number {
  return size < 32 << 20 ? 9 : 6;
}
/** zstd processes at once (this machine class has two cores). */
const RUNS = 2;

interface Batch {
  level: number;
  paths: string[];
}

/** Splits files into RUNS lists of about equal bytes, largest first, each cut into batches of one level. */
function batches(items: { d: Descriptor; path: string }[]): Batch[][] {
  const lists: { bytes: number; items: typeof items }[] = Array.from({ length: RUNS }, () => ({ bytes: 0, items: [] }));
  for (const x of [...items].sort((a, b) => b.d.size - a.d.size)) {
    const l = lists.reduce((a, b) => (b.bytes < a.bytes ? b : a));
    l.bytes += x.d.size;
    l.items.push(x);
  }
  return lists.map((l) => {
    const out: Batch[] = [];
    for (const x of l.items) {
      const level = blobLevel(x.d.size);
      const last = out.at(-1);
      if (last && last.level === level && last.paths.length < BATCH) last.paths.push(x.path);
      else out.push({ level, paths: [x.path] });
    }
    return out;
  });
}

function zstdRun(b: Batch, dir: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn('zstd', [`-${b.level}`, '-q', '-f', '--output-dir-flat', dir, '--', ...b.paths], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (x: Buffer) => (err += x));
    child.on('error', (e) => reject(new BlockportError('ETOOL', `compressing blobs needs the 'zstd' command (${e.message})`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new BlockportError('ETOOL', `zstd failed: ${err.trim().split('\n').pop()}`))));
  });
}

/** Compresses blob files with zstd, RUNS processes at once (`--output-dir-flat` names them HEX.zst), after checking each file's digest. */
async function compressFiles(items: { d: Descriptor; path: string }[], src: BlobSource, dir: string): Promise<void> {
  const drain = () => new Writable({ write: (_c, _e, cb) => cb() });
  for (const { d } of items) await pipeline(await src.open(d), drain()); // verified read: a corrupt blob fails here
  const runs = await Promise.allSettled(batches(items).map(async (list) => {
    for (const b of list) await zstdRun(b, dir);
  }));
  const failed = runs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Decides how each blob travels: zstd when it makes the blob smaller, else as is. Compressed
 * blobs are left in `dir` as HEX.zst.
 */
export async function encodeBlobs(send: Descriptor[], src: BlobSource, dir: string, opts: { compress: boolean; onBlob?: (d: Descriptor) => void }): Promise<BundleBlob[]> {
  const tryZstd: Descriptor[] = [];
  for (const d of send) {
    if (opts.compress && worthTrying(d)) tryZstd.push(d);
    else opts.onBlob?.(d);
  }
  const files = tryZstd.flatMap((d) => {
    const path = src.path?.(d);
    return path && digestHex(d.digest) === path.slice(path.lastIndexOf('/') + 1) ? [{ d, path }] : [];
  });
  await compressFiles(files, src, dir);
  files.forEach((f) => opts.onBlob?.(f.d));
  const batched = new Set(files.map((f) => f.d.digest));
  for (const d of tryZstd.filter((x) => !batched.has(x.digest))) {
    await compressStream(d, src, dir);
    opts.onBlob?.(d);
  }
  const chosen = new Set(tryZstd.map((d) => d.digest));
  return Promise.all(send.map(async (d): Promise<BundleBlob> => {
    const raw: BundleBlob = { digest: d.digest, size: d.size, mediaType: d.mediaType, encoding: 'none', storedSize: d.size };
    if (!chosen.has(d.digest)) return raw;
    const { size } = await fsp.stat(encodedPath(dir, d));
    if (size < d.size) return { ...raw, encoding: 'zstd', storedSize: size };
    await fsp.rm(encodedPath(dir, d), { force: true });
    return raw;
  }));
}
