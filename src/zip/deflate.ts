import { inflateRawSync } from 'node:zlib';
import pako from 'pako';
import { deflaterFor } from './deflater.js';
import type { FileRange } from './file-range.js';
import type { ZipEntry } from './parse.js';

/**
 * The zlib parameters that re-create one raw deflate stream: level 1-9, memLevel 1-9, windowBits
 * 9-15, strategy 0-3 (default, filtered, huffman only, RLE). The deflater is pako 2.1.0 (a port of
 * zlib 1.2.8): measured on 24,512 deflate streams of 38 real jars (tomcat 10.1.55/60, zookeeper,
 * jackson, the closure compiler), it re-created 24,511 at level 6 at 15 MB/s of input; Node's own
 * zlib (Chromium's fork) re-created 0 of tomcat-catalina's 1,726.
 */
export interface DeflateParams {
  level: number;
  memLevel: number;
  windowBits: number;
  strategy: number;
}

/** The parameters tried, most likely first: Java's Deflater (and so `jar`, Maven, Gradle) uses zlib's default level 6. */
export const CANDIDATES: readonly DeflateParams[] = [6, 9, 1, 5, 4, 3, 2, 7, 8].map((level) => ({ level, memLevel: 8, windowBits: 15, strategy: 0 }))
  .concat([{ level: 6, memLevel: 9, windowBits: 15, strategy: 0 }, { level: 9, memLevel: 9, windowBits: 15, strategy: 0 }]);

/** Compressed bytes pushed to the inflater at once: bounds what one push can expand to (deflate's ratio is at most 1032:1). */
const IN_PIECE = 16 << 10;
/** Output chunk of the inflater and deflater. */
const OUT_CHUNK = 64 << 10;
/** Entries up to this size are inflated once and kept in memory while parameters are tried; larger ones are inflated again for each try. */
export const IN_MEMORY = 8 << 20;

export function checkParams(p: DeflateParams): boolean {
  return p.level >= 1 && p.level <= 9 && p.memLevel >= 1 && p.memLevel <= 9 && p.windowBits >= 9 && p.windowBits <= 15 && p.strategy >= 0 && p.strategy <= 3;
}

/** Thrown by inflatePieces when an entry's data is not exactly one deflate stream of its size. */
class NotInflatable extends Error {}

/**
 * Inflates an entry's data piece by piece (pako's output chunks are fresh buffers, never reused).
 * Throws NotInflatable at the end unless the data is one raw deflate stream that ends exactly at
 * the end of the data and gives exactly the entry's size (truncated, trailing bytes, a size lie).
 */
export function* inflatePieces(z: FileRange, e: ZipEntry): Generator<Buffer> {
  const inf = new pako.Inflate({ raw: true, chunkSize: OUT_CHUNK });
  let out: Buffer[] = [];
  let total = 0;
  let ended = false;
  inf.onData = (c: Uint8Array) => {
    total += c.length;
    out.push(Buffer.from(c.buffer, c.byteOffset, c.length));
  };
  inf.onEnd = (status: number) => {
    ended = status === 0;
  };
  for (let at = e.dataStart; at < e.dataEnd; at += IN_PIECE) {
    const piece = z.read(at, Math.min(IN_PIECE, e.dataEnd - at));
    inf.push(piece, false);
    if (inf.err || total > e.size) throw new NotInflatable();
    yield* out;
    out = [];
    const left = (inf as unknown as { strm: { avail_in: number } }).strm.avail_in;
    if (ended) {
      if (at + piece.length !== e.dataEnd || left !== 0) throw new NotInflatable();
      break;
    }
  }
  if (!ended || total !== e.size) throw new NotInflatable();
}

/**
 * Inflates a small entry at once with Node's zlib (any conforming inflater gives the same bytes;
 * it is about 3 times faster than pako's): undefined unless it inflates exactly, as inflatePieces.
 */
function inflateSmall(z: FileRange, e: ZipEntry): Buffer | undefined {
  try {
    const r = inflateRawSync(z.read(e.dataStart, e.compressedSize), { info: true, maxOutputLength: Math.max(1, e.size) }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    return r.buffer.length === e.size && r.engine.bytesWritten === e.compressedSize ? r.buffer : undefined;
  } catch {
    return undefined;
  }
}

/** Feeds an entry's inflated pieces to `onData`; false (nothing more said) when it does not inflate exactly. */
export function inflateEntry(z: FileRange, e: ZipEntry, onData: (b: Buffer) => void): boolean {
  if (e.size <= IN_MEMORY && e.compressedSize <= IN_MEMORY) {
    const b = inflateSmall(z, e);
    if (b && b.length > 0) onData(b);
    return b !== undefined;
  }
  try {
    for (const b of inflatePieces(z, e)) onData(b);
    return true;
  } catch (err) {
    if (err instanceof NotInflatable) return false;
    throw err;
  }
}

/** Deflates `input` with `p`, calling `onData` with each piece of output until it returns false. */
export function deflatePieces(p: DeflateParams, input: Iterable<Buffer>, onData: (b: Buffer) => boolean | void): boolean {
  const d = deflaterFor(p);
  let stop = false;
  const take = (c: Buffer) => {
    if (!stop && onData(c) === false) stop = true;
  };
  for (const piece of input) {
    d.push(piece, false, take);
    if (stop) {
      d.reset();
      return false;
    }
  }
  d.push(new Uint8Array(0), true, take);
  return !stop;
}

/** Whether deflating `input` with `p` gives exactly the entry's compressed bytes; stops at the first differing piece. */
export function reproduces(z: FileRange, e: ZipEntry, p: DeflateParams, input: Iterable<Buffer>): boolean {
  let pos = e.dataStart;
  const ok = deflatePieces(p, input, (c) => {
    if (pos + c.length > e.dataEnd || !z.read(pos, c.length).equals(c)) return false;
    pos += c.length;
    return true;
  });
  return ok && pos === e.dataEnd;
}

/**
 * Finds parameters that re-create a deflate entry byte for byte from its uncompressed bytes,
 * trying `first` before the usual candidates, or undefined. The caller has checked the entry
 * inflates (inflateEntry). `tries` caps the candidates tried (a zip no candidate fits costs one each).
 */
export function findParams(z: FileRange, e: ZipEntry, first: DeflateParams | undefined, tries = CANDIDATES.length + 1): DeflateParams | undefined {
  const list = first ? [first, ...CANDIDATES.filter((c) => !sameParams(c, first))] : [...CANDIDATES];
  let kept: Buffer[] | undefined;
  if (e.size <= IN_MEMORY) {
    kept = [];
    if (!inflateEntry(z, e, (b) => kept!.push(b))) return undefined;
  }
  try {
    for (const p of list.slice(0, tries)) if (reproduces(z, e, p, kept ?? inflatePieces(z, e))) return p;
  } catch (err) {
    if (!(err instanceof NotInflatable)) throw err;
  }
  return undefined;
}

export function sameParams(a: DeflateParams, b: DeflateParams): boolean {
  return a.level === b.level && a.memLevel === b.memLevel && a.windowBits === b.windowBits && a.strategy === b.strategy;
}
