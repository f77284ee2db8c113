import { spawn } from 'node:child_process';
import { createWriteStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { deflateRawSync } from 'node:zlib';
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

/** Bytes of a blob's head that tell, compressed in-process, whether zstd is worth running on it. */
const SAMPLE = 256 << 10;
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

/** Cheap test: deflate level 1 of the head. Jars and media gain well under 3%; then skip zstd. */
async function looksCompressible(d: Descriptor, src: BlobSource): Promise<boolean> {
  const s = await src.open(d);
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of s) {
    parts.push(chunk as Buffer);
    if ((n += (chunk as Buffer).length) >= SAMPLE) break; // leaving the loop destroys the stream
  }
  const head = Buffer.concat(parts).subarray(0, SAMPLE);
  return deflateRawSync(head, { level: 1 }).length < head.length * 0.97;
}

/** Compresses one blob from its stream into the work folder. */
async function compressStream(d: Descriptor, src: BlobSource, dir: string): Promise<void> {
  await pipeline([await src.open(d), compressor('zstd', `compressing ${d.digest}`)!, createWriteStream(encodedPath(dir, d), { highWaterMark: CHUNK })] as unknown as NodeJS.ReadWriteStream[]);
}

/** Compresses blob files with one zstd run per batch (`--output-dir-flat` names them HEX.zst), after checking each file's digest. */
async function compressFiles(items: { d: Descriptor; path: string }[], src: BlobSource, dir: string): Promise<void> {
  const drain = () => new Writable({ write: (_c, _e, cb) => cb() });
  for (const { d } of items) await pipeline(await src.open(d), drain()); // verified read: a corrupt blob fails here
  for (let i = 0; i < items.length; i += BATCH) {
    const paths = items.slice(i, i + BATCH).map((x) => x.path);
    await new Promise<void>((resolve, reject) => {
      const child = spawn('zstd', ['-3', '-q', '-f', '-T0', '--output-dir-flat', dir, '--', ...paths], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b));
      child.on('error', (e) => reject(new BlockportError('ETOOL', `compressing blobs needs the 'zstd' command (${e.message})`)));
      child.on('close', (code) => (code === 0 ? resolve() : reject(new BlockportError('ETOOL', `zstd failed: ${err.trim().split('\n').pop()}`))));
    });
  }
}

/**
 * Decides how each blob travels: zstd when it makes the blob smaller, else as is. Compressed
 * blobs are left in `dir` as HEX.zst. Blobs whose head does not deflate are never given to zstd.
 */
export async function encodeBlobs(send: Descriptor[], src: BlobSource, dir: string, opts: { compress: boolean; onBlob?: (d: Descriptor) => void }): Promise<BundleBlob[]> {
  const tryZstd: Descriptor[] = [];
  for (const d of send) {
    if (opts.compress && worthTrying(d) && (await looksCompressible(d, src))) tryZstd.push(d);
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
