import type { CopyThreads, Piece } from '../cas/copy-plan.js';
import type { Digest } from '../digest/digest.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';
import type { TreeEntry } from './source-tree.js';

/** What every entry of a built layer gets, whatever the build machine had on disk. */
export interface EntryMeta {
  /** Seconds since the epoch: SOURCE_DATE_EPOCH, or 0. */
  mtime: number;
  uid: number;
  gid: number;
}

/**
 * The standard layer as copy-plan pieces: blockport's deterministic headers (docs/spec.md 3.2), the
 * files' bytes as ranges of the host files, zero padding, the end-of-archive marker. No record
 * padding: the same tree always gives the same bytes.
 */
export async function* layerPieces(entries: TreeEntry[], meta: EntryMeta): AsyncGenerator<Piece> {
  for (const e of entries) {
    yield encodeHeader({ path: e.path, type: e.type, size: e.size, mode: e.mode, uid: meta.uid, gid: meta.gid, mtime: meta.mtime, linkname: e.linkname });
    if (e.type === 'file' && e.size > 0) {
      yield { path: e.src!, offset: 0, size: e.size };
      yield padding(e.size);
    }
  }
  yield END_OF_ARCHIVE;
}

/** Writes the layer tar to `file` (created) on a copy thread; resolves to its diff_id and size. */
export function writeLayerTar(file: string, entries: TreeEntry[], meta: EntryMeta, threads: CopyThreads): Promise<{ digest: Digest; size: number }> {
  return threads.copy(file, 0, layerPieces(entries, meta), { create: true });
}
