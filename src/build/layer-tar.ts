import type { CopyThreads, Piece } from '../cas/copy-plan.js';
import type { LayerPart } from '../blocks/blockify.js';
import type { Digest } from '../digest/digest.js';
import { applyPax, BLOCK, parseBlock, parsePax, type TarHeader } from '../tar/header.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';
import type { TreeEntry } from './source-tree.js';

/** What every entry of a built layer gets, whatever the build machine had on disk. */
export interface EntryMeta {
  /** Seconds since the epoch: SOURCE_DATE_EPOCH, or 0. */
  mtime: number;
  uid: number;
  gid: number;
}

/** The header as a tar reader would parse `raw` (an optional PAX header, then the ustar block). */
function parsed(raw: Buffer): TarHeader {
  const h = parseBlock(raw.subarray(raw.length - BLOCK));
  if (raw.length > BLOCK) applyPax(h, parsePax(raw.subarray(BLOCK, BLOCK + parseBlock(raw.subarray(0, BLOCK)).size)));
  return h;
}

/**
 * The entries of the standard layer: blockport's deterministic headers (docs/spec.md 3.2) and the
 * files' bytes as ranges of the host files. Made again for each use (the same inputs give the
 * same bytes), so a tree of any size costs no memory beyond its listing.
 */
export function* layerParts(entries: TreeEntry[], meta: EntryMeta): Generator<LayerPart> {
  for (const e of entries) {
    const raw = encodeHeader({ path: e.path, type: e.type, size: e.size, mode: e.mode, uid: meta.uid, gid: meta.gid, mtime: meta.mtime, linkname: e.linkname });
    yield { raw, header: parsed(raw), data: e.type === 'file' && e.size > 0 ? { path: e.src!, offset: 0, size: e.size } : undefined };
  }
}

/** The standard layer tar as copy-plan pieces: headers, data ranges, zero padding, end-of-archive; no record padding. */
export async function* layerPieces(entries: TreeEntry[], meta: EntryMeta): AsyncGenerator<Piece> {
  for (const p of layerParts(entries, meta)) {
    yield p.raw;
    if (p.data) {
      yield p.data;
      yield padding(p.data.size);
    }
  }
  yield END_OF_ARCHIVE;
}

/** Writes the layer tar to `file` (created) on a copy thread; resolves to its diff_id and size. */
export function writeLayerTar(file: string, entries: TreeEntry[], meta: EntryMeta, threads: CopyThreads): Promise<{ digest: Digest; size: number }> {
  return threads.copy(file, 0, layerPieces(entries, meta), { create: true });
}

/** Hashes the layer tar without writing it: its diff_id and size. */
export function hashLayerTar(entries: TreeEntry[], meta: EntryMeta, threads: CopyThreads): Promise<{ digest: Digest; size: number }> {
  return threads.copy('', 0, layerPieces(entries, meta));
}
