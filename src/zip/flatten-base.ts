import { inflateEntry, inflatePieces, IN_MEMORY } from './deflate.js';
import type { FileRange } from './file-range.js';
import type { FlatWriter } from './flat-writer.js';
import type { ZipEntry, ZipLayout } from './parse.js';
import type { Segment } from './segments.js';
import { copyRange, nestedZip, tryParse } from './walk.js';

/** Inflated bytes the flat form of a base may hold: 16 times the base and 64 MiB more (a zip bomb stays compressed). */
export function baseBudget(size: number): { left: number } {
  return { left: 16 * size + (64 << 20) };
}

/** The byte ranges of the old zip that the plan copies, sorted: entries inside one need no place in the dictionary. */
export class CopiedRanges {
  private readonly starts: number[];
  private readonly ends: number[];

  constructor(segments: Segment[]) {
    const copies = segments.filter((s): s is Extract<Segment, { kind: 'copy' }> => s.kind === 'copy').sort((a, b) => a.offset - b.offset);
    this.starts = copies.map((c) => c.offset);
    this.ends = copies.map((c) => c.offset + c.length);
  }

  /** Whether [start, end) lies inside one copied range. */
  covers(start: number, end: number): boolean {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid] <= start) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && end <= this.ends[hi] && end > start;
  }
}

interface Flatten {
  w: FlatWriter;
  budget: { left: number };
  copied: CopiedRanges;
}

/**
 * Writes the flat form of the receiver's old zip, the dictionary a zip delta's patch is decoded
 * against: the zip's bytes in order, each entry whose data the plan copies left out, each deflate
 * entry that inflates exactly to its size replaced by its uncompressed bytes, each stored zip (a
 * fat jar's nested jar) flattened the same way. A file that is no zip (or is refused) is its own
 * flat form. Sender and receiver run this same function on the same verified bytes and plan, so
 * both get the same file (docs/spec.md 14.10).
 */
export function flattenBase(z: FileRange, w: FlatWriter, copied: CopiedRanges, budget = baseBudget(z.size)): void {
  const layout = tryParse(z);
  if (!layout) return copyRange(z, 0, z.size, w);
  flattenLayout(z, layout, { w, budget, copied }, 0);
}

function flattenLayout(z: FileRange, layout: ZipLayout, f: Flatten, depth: number): void {
  let pos = 0;
  for (const e of layout.entries) {
    copyRange(z, pos, e.dataStart - pos, f.w);
    if (!f.copied.covers(z.start + e.dataStart, z.start + e.dataEnd)) flattenEntry(z, e, f, depth);
    pos = e.dataEnd;
  }
  copyRange(z, pos, z.size - pos, f.w);
}

function flattenEntry(z: FileRange, e: ZipEntry, f: Flatten, depth: number): void {
  const { w, budget } = f;
  if (e.method === 8 && (e.flags & 1) === 0 && e.size <= budget.left && inflates(z, e, w)) {
    budget.left -= e.size;
    return;
  }
  const nested = nestedZip(z, e, depth);
  if (nested) flattenLayout(nested.range, nested.layout, f, depth + 1);
  else copyRange(z, e.dataStart, e.compressedSize, w);
}

/** Writes the entry inflated when it inflates exactly; writes nothing otherwise (large entries are checked in a first pass). */
function inflates(z: FileRange, e: ZipEntry, w: FlatWriter): boolean {
  if (e.size > IN_MEMORY) {
    if (!inflateEntry(z, e, () => {})) return false;
    for (const b of inflatePieces(z, e)) w.write(b);
    return true;
  }
  const parts: Buffer[] = [];
  if (!inflateEntry(z, e, (b) => parts.push(b))) return false;
  for (const b of parts) w.write(b);
  return true;
}
