import { Transform, type Duplex } from 'node:stream';
import { createDeflateRaw, crc32 } from 'node:zlib';
import pako from 'pako';
import { CHUNK } from '../chunk.js';
import { spawnFilter } from '../oci/compression.js';
import type { GzipRecipe, Recipe, ZstdRecipe } from './recipe.js';

/** The 8-byte gzip trailer: CRC-32 and length mod 2^32 of the uncompressed bytes. */
function trailer(crc: number, size: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeUInt32LE(crc >>> 0, 0);
  t.writeUInt32LE(size % 2 ** 32, 4);
  return t;
}

/**
 * Vanilla zlib's raw deflate, through pako (a byte-exact port: Node's own zlib is a fork whose
 * SIMD hashing writes other bytes). It runs on the calling thread, synchronously per chunk.
 */
function pakoMember(r: GzipRecipe): Transform {
  // small output chunks: a wrong candidate is seen at its first block, not after 256 KiB of output
  const d = new pako.Deflate({ level: r.level as pako.DeflateFunctionOptions['level'], raw: true, chunkSize: 16 << 10 });
  let crc = 0;
  let size = 0;
  let out: Transform;
  d.onData = (c) => {
    const a = c as Uint8Array; // raw deflate without `to: 'string'` gives bytes
    out.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  };
  const fail = () => new Error(`zlib level ${r.level}: ${d.msg || `error ${d.err}`}`);
  out = new Transform({
    highWaterMark: CHUNK,
    transform(chunk: Buffer, _enc, cb) {
      if (size === 0) this.push(r.header);
      crc = crc32(chunk, crc);
      size += chunk.length;
      cb(d.push(chunk, false) ? null : fail());
    },
    flush(cb) {
      if (size === 0) this.push(r.header);
      if (!d.push(new Uint8Array(0), true)) return cb(fail());
      this.push(trailer(crc, size));
      cb();
    },
  });
  return out;
}

/** Node's built-in raw deflate (the fork blockport's own gzip writer uses), same framing. */
function nodeMember(r: GzipRecipe): Duplex {
  const z = createDeflateRaw({ level: r.level, chunkSize: 64 << 10 });
  let crc = 0;
  let size = 0;
  const out = new Transform({
    highWaterMark: CHUNK,
    transform(chunk: Buffer, _enc, cb) {
      crc = crc32(chunk, crc);
      size += chunk.length;
      if (!z.write(chunk)) z.once('drain', () => cb());
      else cb();
    },
    flush(cb) {
      z.once('end', () => {
        this.push(trailer(crc, size));
        cb();
      });
      z.end();
    },
  });
  out.push(r.header);
  z.on('data', (c: Buffer) => out.push(c));
  z.on('error', (e) => out.destroy(e));
  return out;
}

/** GNU gzip with `-n` (no name, mtime 0): its 10-byte header is replaced by the recorded one. */
function gnuMember(r: GzipRecipe, what: string): Duplex {
  const gz = spawnFilter('gzip', ['-c', '-n', `-${r.level}`], what);
  let skip = 10;
  const strip = new Transform({
    highWaterMark: CHUNK,
    transform(chunk: Buffer, _enc, cb) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length);
        skip -= n;
        chunk = chunk.subarray(n);
        if (skip === 0) this.push(r.header);
      }
      cb(null, chunk.length ? chunk : undefined);
    },
  });
  gz.on('error', (e) => strip.destroy(e));
  strip.on('close', () => gz.destroy());
  const piped = gz.pipe(strip);
  return composeDuplex(gz, piped);
}

/** One duplex writing into `head` and reading from `tail`. */
function composeDuplex(head: Duplex, tail: Transform): Duplex {
  const out = new Transform({
    highWaterMark: CHUNK,
    transform(chunk: Buffer, _enc, cb) {
      if (!head.write(chunk)) head.once('drain', () => cb());
      else cb();
    },
    flush(cb) {
      tail.once('end', () => cb());
      head.end();
    },
  });
  tail.on('data', (c: Buffer) => out.push(c));
  tail.on('error', (e) => out.destroy(e));
  head.on('error', (e) => out.destroy(e));
  out.on('close', () => {
    head.destroy();
    tail.destroy();
  });
  return out;
}

/** The `zstd` command line that re-creates a zstd recipe's frame. */
export function zstdArgs(r: ZstdRecipe, size: number): string[] {
  return [
    '-c', '-q', `-${r.level}`,
    ...(r.level > 19 ? ['--ultra'] : []),
    ...(r.contentSize ? [`--stream-size=${size}`] : []),
    ...(r.checksum ? [] : ['--no-check']),
    ...(r.long ? [`--long=${r.long}`] : []),
    r.singleThread ? '--single-thread' : '-T1',
  ];
}

/**
 * A transform from the uncompressed layer (`size` bytes) to the bytes `r` says the blob had.
 * Nothing here checks them: the caller compares or hashes the output.
 */
export function recompressor(r: Recipe, size: number, what: string): Duplex {
  if (r.format === 'zstd') return spawnFilter('zstd', zstdArgs(r, size), what);
  if (r.engine === 'zlib') return pakoMember(r);
  if (r.engine === 'node-zlib') return nodeMember(r);
  return gnuMember(r, what);
}
