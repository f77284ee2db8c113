import type { FileRange } from './file-range.js';
import type { ZipEntry } from './parse.js';
import { nestedZip, tryParse } from './walk.js';

/** The old zip's entries by what identifies their data (method, CRC, sizes), at their offsets in the old zip, nested zips' entries too. */
export interface BaseIndex {
  range: FileRange;
  entries: Map<string, number[]>;
}

function key(e: ZipEntry): string {
  return `${e.method}:${e.crc}:${e.compressedSize}:${e.size}`;
}

export function indexBase(base: FileRange): BaseIndex {
  const entries = new Map<string, number[]>();
  const walk = (z: FileRange, depth: number) => {
    for (const e of tryParse(z)?.entries ?? []) {
      const k = key(e);
      entries.set(k, [...(entries.get(k) ?? []), z.start - base.start + e.dataStart]);
      const nested = nestedZip(z, e, depth);
      if (nested) walk(nested.range, depth + 1);
    }
  };
  walk(base, 0);
  return { range: base, entries };
}

function sameBytes(a: FileRange, at: number, b: FileRange, bt: number, len: number): boolean {
  const piece = 1 << 18;
  for (let i = 0; i < len; i += piece) {
    const n = Math.min(piece, len - i);
    if (!a.read(at + i, n).equals(b.read(bt + i, n))) return false;
  }
  return true;
}

/** The offset in the old zip of data identical to the entry's (compared byte for byte), if any. */
export function findSame(base: BaseIndex, z: FileRange, e: ZipEntry): number | undefined {
  if (e.compressedSize === 0) return undefined;
  return base.entries.get(key(e))?.find((off) => sameBytes(base.range, off, z, e.dataStart, e.compressedSize));
}
