import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import type { Duplex } from 'node:stream';
import { BlockportError } from '../errors.js';
import { spawnFilter } from '../oci/compression.js';
import type { DeltaEncoding } from './format.js';

/**
 * Pairs (base + new bytes) from this size on are encoded with xdelta3: zstd --patch-from holds
 * both in memory. Measured with zstd 1.5.4 at patchLevel(): below 64 MiB (window log <= 26) it
 * peaks at 130 MB RSS; 64 MiB at -9 took 132 MB, 80 MiB at -6 138 MB, 2 x 129 MB at -6 397 MB.
 */
export const ZSTD_PATCH_LIMIT = 64 << 20;

/**
 * xdelta3's source window (-B), the same when decoding. Measured on a 2 x 129 MB pair with xdelta3
 * 3.0.11 -9: 8 MiB 78 MB RSS, 16 MiB 102 MB, 32 MiB 151 MB, all within 1% in size; encoding a
 * 512 MB pair stays at 103 MB, decoding takes 31 MB.
 */
export const VCDIFF_WINDOW = 16 << 20;

/** The delta encoding for a pair: zstd below `limit` bytes together, VCDIFF from there on. */
export function patchEncoding(baseSize: number, size: number, limit = ZSTD_PATCH_LIMIT): Exclude<DeltaEncoding, 'zip-delta'> {
  return baseSize + size < limit ? 'zstd-patch' : 'vcdiff';
}

/**
 * zstd level for a patch of `size` bytes: 19 up to 24 MiB, 9 up to 32 MiB, 6 above. Measured with
 * zstd 1.5.4 on the JRE files of an openjdk 17.0.19 -> 17.0.21 upgrade (2 cores, loaded): -19
 * halves the patches of native code and CDS archives against -9 (libjvm.so, 24 MB: 4.64 -> 2.37
 * MB, 30 s of CPU instead of 3; classes.jsa, 14 MB: 2.35 -> 1.39 MB), where on jars' compressed
 * bytes it gained ~1%. A 33 MB pair at -19 took 151 MB RSS (over the budget), hence -9 above 24 MiB.
 */
export function patchLevel(size: number): number {
  if (size <= 24 << 20) return 19;
  return size <= 32 << 20 ? 9 : 6;
}

/**
 * -19's match tables, capped: uncapped they grow with the window (181 MB RSS for 2 x 4 MiB).
 * hlog=20,clog=21 keeps two 4 MiB JRE module files at 42 MB with patches within 0.1%; above
 * 4 MiB the chain table gets one more bit (libjvm.so, 24 MB: 2.37 MB at 119 MB RSS; clog=21
 * gave 3.86 MB, clog=23 2.11 MB at 161 MB, over the 150 MB budget).
 */
export function patchTables(size: number): string[] {
  return [`--zstd=hlog=20,clog=${size <= 4 << 20 ? 21 : 22}`];
}

/** The window (log2 bytes) that reaches from the end of the new data back to the start of the base. */
export function patchWindowLog(baseSize: number, size: number): number {
  return Math.min(31, Math.max(10, Math.ceil(Math.log2(baseSize + size + 1))));
}

/** Runs zstd or xdelta3 to completion; ETOOL when it is absent or fails. */
function runTool(cmd: string, args: string[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => {
      if (err.length < 8192) err += b.toString();
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new BlockportError('ETOOL', e.code === 'ENOENT' ? `${what} needs the '${cmd}' command (apt-get install ${cmd})` : `${what}: ${cmd}: ${e.message}`));
    });
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new BlockportError('ETOOL', `${what}: ${cmd} failed: ${err.trim().split('\n').pop() || `exit ${code}`}`));
    });
  });
}

/**
 * Writes to `out` the zstd frame that rebuilds the file `target` from the file `base`
 * (`zstd --patch-from`), and returns its size. Both files must stay unchanged meanwhile.
 */
export async function encodePatch(base: { path: string; size: number }, target: { path: string; size: number }, out: string, what = `delta of ${target.path}`): Promise<number> {
  const size = Math.max(base.size, target.size);
  const level = patchLevel(size);
  const tables = level === 19 ? patchTables(size) : [];
  const args = ['-q', `-${level}`, ...tables, `--long=${patchWindowLog(base.size, target.size)}`, `--patch-from=${base.path}`, '-o', out, '--', target.path];
  await runTool('zstd', args, what);
  return (await fsp.stat(out)).size;
}

/**
 * Writes to `out` the VCDIFF delta (RFC 3284, xdelta3 -9 with lzma secondary compression) that
 * rebuilds `target` from `base`, and returns its size. Memory stays near 100 MB whatever the sizes.
 * -A drops the header naming the files (the bytes would depend on temp paths), -D keeps xdelta3
 * from gunzipping inputs itself (it would recompress on decode, not byte for byte).
 */
export async function encodeVcdiff(base: { path: string }, target: { path: string }, out: string, what = `delta of ${target.path}`): Promise<number> {
  const args = ['-e', '-9', '-q', '-f', '-A', '-D', '-S', 'lzma', '-B', String(VCDIFF_WINDOW), '-s', base.path, target.path, out];
  await runTool('xdelta3', args, what);
  return (await fsp.stat(out)).size;
}

/**
 * A stream that turns a patch made by `encodePatch` back into the target, given the base file. The
 * output is not verified here: the caller checks it against the target's digest and size.
 */
export function patchDecoder(basePath: string, what: string): Duplex {
  return spawnFilter('zstd', ['-d', '-c', '-q', '--long=31', `--patch-from=${basePath}`], what);
}

/** A stream that turns a delta made by `encodeVcdiff` back into the target, given the base file (not verified here either). */
export function vcdiffDecoder(basePath: string, what: string): Duplex {
  // -R: never run an external compressor a header might ask for
  return spawnFilter('xdelta3', ['-d', '-c', '-q', '-D', '-R', '-B', String(VCDIFF_WINDOW), '-s', basePath], what);
}
