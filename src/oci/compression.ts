import { spawn } from 'node:child_process';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { BlockportError } from '../errors.js';
import type { Compression } from './media-types.js';
import { CHUNK, peek } from '../chunk.js';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** The compression the first bytes of a stream show. */
export function sniffCompression(head: Buffer): Compression {
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return 'gzip';
  if (head.subarray(0, 4).equals(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/**
 * Runs an external filter (zstd) as a stream. Node 20 has no zstd; the `zstd` CLI is fast, streams,
 * and does --patch-from, which the libraries on npm do not. Fails with ETOOL when it is absent.
 */
export function spawnFilter(cmd: string, args: string[], what: string): Duplex {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString();
  });
  const out = new PassThrough({ highWaterMark: CHUNK });
  const duplex = Duplex.from({ writable: child.stdin, readable: out });
  child.stdout.pipe(out, { end: false });
  const fail = (err: Error) => duplex.destroy(err);
  child.on('error', (err) => {
    const e = err as NodeJS.ErrnoException;
    fail(e.code === 'ENOENT'
      ? new BlockportError('ETOOL', `${what} needs the '${cmd}' command (apt-get install ${cmd})`)
      : new BlockportError('ETOOL', `${what}: ${cmd}: ${e.message}`));
  });
  child.stdin.on('error', () => {}); // EPIPE when the child exits early; the exit code tells why
  child.on('close', (code) => {
    if (code === 0) out.end();
    else fail(new BlockportError('ECORRUPT', `${what}: ${cmd} failed: ${stderr.trim().split('\n').pop() || `exit ${code}`}`));
  });
  duplex.on('close', () => {
    if (child.exitCode === null) child.kill();
  });
  return duplex;
}

/** A gunzip whose failures are ECORRUPT naming `what`: zlib reports bad input as bare "unknown header flags set". */
function gunzip(what: string): Duplex {
  const z = createGunzip({ chunkSize: CHUNK });
  const destroy = z._destroy.bind(z);
  const fromZlib = (e: Error | null | undefined) => /^Z_/.test(String((e as NodeJS.ErrnoException | undefined)?.code));
  z._destroy = (err, cb) => destroy(err, (e) => cb(fromZlib(e) ? new BlockportError('ECORRUPT', `${what}: corrupt gzip data (${e!.message})`, { cause: e }) : e));
  return z;
}

/** A transform that decompresses `c`. */
export function decompressor(c: Compression, what: string): Duplex | undefined {
  if (c === 'gzip') return gunzip(what);
  if (c === 'zstd') return spawnFilter('zstd', ['-d', '-c', '-q', '--long=31'], what);
  return undefined;
}

/** A transform that compresses with `c` (gzip level 6 like docker; zstd level 3 like containerd). */
export function compressor(c: Compression, what: string): Duplex | undefined {
  if (c === 'gzip') return createGzip({ level: 6, chunkSize: CHUNK });
  if (c === 'zstd') return spawnFilter('zstd', ['-3', '-c', '-q', '-T0'], what);
  return undefined;
}

/**
 * The uncompressed bytes of a layer blob, whatever compression its bytes show (media types lie
 * more often than magic numbers do).
 */
export async function openUncompressed(stream: Readable, what: string): Promise<Readable> {
  const { head, stream: s } = await peek(stream);
  const d = decompressor(sniffCompression(head), what);
  if (!d) return s;
  s.on('error', (e) => d.destroy(e));
  // a reader that stops early destroys the decompressor; the compressed source must close too
  d.on('close', () => s.destroy());
  return s.pipe(d);
}
