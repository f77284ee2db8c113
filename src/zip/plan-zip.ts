import { findParams, inflateEntry, inflatePieces, IN_MEMORY, type DeflateParams } from './deflate.js';
import { findSame, type BaseIndex } from './base-index.js';
import type { FileRange } from './file-range.js';
import type { FlatWriter } from './flat-writer.js';
import { parseZip, type ZipEntry, type ZipLayout } from './parse.js';
import { pushSegment, type Segment } from './segments.js';
import { copyRange, nestedZip } from './walk.js';

/** What planZip made of a zip's entries (nested zips' entries counted too). */
export interface ZipPlanStats {
  entries: number;
  /** Identical to an entry of the old zip: copied from it. */
  copied: number;
  /** Re-created by deflate from their uncompressed bytes. */
  deflated: number;
  /** Zips stored in the zip, planned entry by entry. */
  nested: number;
  /** Stored (not compressed): their bytes travel in the flat stream as they are. */
  stored: number;
  /** Carried as their compressed bytes: no parameters re-create them, or another method. */
  opaque: number;
}

/** After this many deflate entries of one zip that no candidate re-creates, with none that any did, its other entries are not tried. */
const HOPELESS = 8;

interface Walk {
  base: BaseIndex;
  w: FlatWriter;
  out: Segment[];
  stats: ZipPlanStats;
}

/**
 * Plans the rebuilding of the zip `z` (the new version of a file) against the old one indexed in
 * `base`: appends the segments (see Segment) to a list and writes the flat stream they read to
 * `w`. An entry equal to one of the old zip is a copy; a deflate entry whose compressed bytes the
 * sender re-created exactly (findParams deflates and compares) travels uncompressed with its
 * parameters; a stored zip is planned entry by entry; anything else travels as it is. Throws
 * ZipRefused when `z` itself is refused by parseZip.
 */
export function planZip(z: FileRange, base: BaseIndex, w: FlatWriter): { segments: Segment[]; stats: ZipPlanStats } {
  const walk: Walk = { base, w, out: [], stats: { entries: 0, copied: 0, deflated: 0, nested: 0, stored: 0, opaque: 0 } };
  planLayout(z, parseZip(z), walk, 0);
  return { segments: walk.out, stats: walk.stats };
}

function planLayout(z: FileRange, layout: ZipLayout, walk: Walk, depth: number): void {
  const state = { hint: undefined as DeflateParams | undefined, found: 0, failed: 0 };
  let pos = 0;
  for (const e of layout.entries) {
    raw(z, pos, e.dataStart - pos, walk);
    planEntry(z, e, walk, depth, state);
    pos = e.dataEnd;
  }
  raw(z, pos, z.size - pos, walk);
}

function raw(z: FileRange, pos: number, len: number, walk: Walk): void {
  copyRange(z, pos, len, walk.w);
  pushSegment(walk.out, { kind: 'raw', length: len });
}

function planEntry(z: FileRange, e: ZipEntry, walk: Walk, depth: number, state: { hint?: DeflateParams; found: number; failed: number }): void {
  walk.stats.entries++;
  const same = findSame(walk.base, z, e);
  if (same !== undefined) {
    walk.stats.copied++;
    return pushSegment(walk.out, { kind: 'copy', offset: same, length: e.compressedSize });
  }
  const nested = nestedZip(z, e, depth);
  if (nested) {
    walk.stats.nested++;
    return planLayout(nested.range, nested.layout, walk, depth + 1);
  }
  const hopeless = state.found === 0 && state.failed >= HOPELESS;
  const params = e.method === 8 && (e.flags & 1) === 0 && !hopeless ? findParams(z, e, state.hint) : undefined;
  if (!params) {
    if (e.method === 8) state.failed++;
    if (e.method === 0 && (e.flags & 1) === 0) walk.stats.stored++;
    else walk.stats.opaque++;
    return raw(z, e.dataStart, e.compressedSize, walk);
  }
  state.hint = params;
  state.found++;
  walk.stats.deflated++;
  writeInflated(z, e, walk.w);
  pushSegment(walk.out, { kind: 'deflate', params, size: e.size, compressedSize: e.compressedSize });
}

function writeInflated(z: FileRange, e: ZipEntry, w: FlatWriter): void {
  if (e.size > IN_MEMORY) {
    for (const b of inflatePieces(z, e)) w.write(b);
    return;
  }
  if (!inflateEntry(z, e, (b) => w.write(b))) throw new Error('entry changed while being read');
}
