import type { FileRange } from './file-range.js';
import type { FlatWriter } from './flat-writer.js';
import { looksLikeZip, parseZip, ZipRefused, type ZipEntry, type ZipLayout } from './parse.js';

/** Zips stored in zips are followed this deep (a fat jar's nested jars are one level). */
export const MAX_DEPTH = 4;

/** The zip's layout, or undefined when it is refused (then its bytes are taken as they are). */
export function tryParse(z: FileRange): ZipLayout | undefined {
  if (!looksLikeZip(z)) return undefined;
  try {
    return parseZip(z);
  } catch (err) {
    if (err instanceof ZipRefused) return undefined;
    throw err;
  }
}

/** A stored, unencrypted entry whose bytes are themselves a zip: its range, to be walked as one. */
export function nestedZip(z: FileRange, e: ZipEntry, depth: number): { range: FileRange; layout: ZipLayout } | undefined {
  if (e.method !== 0 || (e.flags & 1) !== 0 || depth >= MAX_DEPTH || e.size < 22) return undefined;
  const range = z.sub(e.dataStart, e.compressedSize);
  const layout = tryParse(range);
  return layout && { range, layout };
}

/** Copies [pos, pos + len) of the range to the writer. */
export function copyRange(z: FileRange, pos: number, len: number, w: FlatWriter): void {
  for (const piece of z.chunks(pos, len)) w.write(piece);
}
