import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestHex } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { TarReader, paddingOf } from '../tar/reader.js';
import type { BlobSource } from './encode.js';
import { readPooled } from './pooled-read.js';

/** File data shorter than this is never copied: the COPY op and the lookup cost more than they save. */
export const MIN_COPY = 128;

/**
 * A byte range of a blob and a key naming its bytes: a whole tar entry (extension headers,
 * header, data, padding), a regular file's data, or a whole file block. Equal keys mean equal
 * bytes (up to sha256 collisions; the receiver verifies every rebuilt blob anyway).
 */
export interface BlobRange {
  at: number;
  size: number;
  key: string;
}

/** The key of data bytes: `d`, their length, their sha256 (base64). */
function dataKey(size: number, sha: Buffer): string {
  return `d${size}:${sha.toString('base64')}`;
}

/**
 * The key of a whole entry: `e`, its length, then sha256 over its header bytes, its data's
 * sha256 and its padding (unambiguous: headers are whole blocks, padding under one), so the data
 * is hashed once for both keys.
 */
function entryKey(size: number, raw: Buffer, data: Buffer, padding: Buffer): string {
  return `e${size}:${createHash('sha256').update(raw).update(data).update(padding).digest('base64')}`;
}

/** Tars kept as they are (no compression): their bytes can be copied from, and rebuilt by, a recipe. */
export function isPlainTar(mediaType: string): boolean {
  return mediaType === MediaType.blockLayer || mediaType === MediaType.blockDir || mediaType === MediaType.ociLayer || mediaType === MediaType.dockerLayer;
}

/** Blobs a recipe can be built for or copy from: plain tars, and file blocks as one range. */
export function isRecipeKind(mediaType: string): boolean {
  return isPlainTar(mediaType) || mediaType === MediaType.blockFile;
}

/** The key of a blob's whole content, from its digest: the key its bytes have as file data. */
export function digestKey(d: Pick<Descriptor, 'digest' | 'size'>): string {
  return dataKey(d.size, Buffer.from(digestHex(d.digest), 'hex'));
}

/** The ranges an index is for: their keys, and the sizes of their entries and file data (others are not hashed). */
export interface Wanted {
  keys: ReadonlySet<string>;
  entrySizes: ReadonlySet<number>;
  dataSizes: ReadonlySet<number>;
}

/** What a set of ranges asks of an index of held blobs. */
export function wantedOf(ranges: Iterable<BlobRange>): Wanted {
  const w = { keys: new Set<string>(), entrySizes: new Set<number>(), dataSizes: new Set<number>() };
  for (const r of ranges) {
    w.keys.add(r.key);
    (r.key.startsWith('e') ? w.entrySizes : w.dataSizes).add(r.size);
  }
  return w;
}

/**
 * The ranges of a tar stream, in order: each entry, then (for a regular file of MIN_COPY bytes
 * or more) its data, both from one hash of the data. With `want`, only wanted ranges are kept,
 * and an entry of a size no wanted range has is not even hashed (read past, still verified).
 */
export async function tarRanges(stream: AsyncIterable<Buffer>, what: string, want?: Wanted): Promise<BlobRange[]> {
  const out: BlobRange[] = [];
  for await (const e of new TarReader(stream, what).entries()) {
    const size = e.raw.length + e.header.size + paddingOf(e.header.size);
    const isData = e.header.type === 'file' && e.header.size >= MIN_COPY;
    const needEntry = !want || want.entrySizes.has(size);
    const needData = isData && (!want || want.dataSizes.has(e.header.size));
    if (!needEntry && !needData) continue;
    const hash = createHash('sha256');
    for await (const c of e.body()) hash.update(c);
    const sha = hash.digest();
    const ranges = [
      ...(needEntry ? [{ at: e.offset, size, key: entryKey(size, e.raw, sha, e.padding!) }] : []),
      ...(needData ? [{ at: e.offset + e.raw.length, size: e.header.size, key: dataKey(e.header.size, sha) }] : []),
    ];
    out.push(...ranges.filter((r) => !want || want.keys.has(r.key)));
  }
  return out;
}

/**
 * A verified read of a blob. From a file named by its digest (a store's) it comes in reused
 * buffers (readPooled): each chunk must be consumed or copied before the one after next.
 */
export async function readBlob(d: Descriptor, src: BlobSource): Promise<AsyncIterable<Buffer>> {
  const file = src.path?.(d);
  return file?.endsWith(`/${digestHex(d.digest)}`) ? readPooled(file, d) : src.open(d);
}

/** Ends a read from readBlob that was not read to its end (closes its file). */
export async function closeBlob(stream: AsyncIterable<Buffer>): Promise<void> {
  if (stream instanceof Readable) stream.destroy();
  else await (stream as AsyncGenerator<Buffer>).return?.(undefined);
}

/**
 * The ranges of a blob a recipe may use: a file block is one range keyed by its digest (nothing
 * read); a plain tar is read (verified) and split by tarRanges. A tar blockport cannot parse
 * gives none: it simply travels without a recipe. Digest mismatches are errors.
 */
export async function blobRanges(d: Descriptor, src: BlobSource, want?: Wanted): Promise<BlobRange[]> {
  if (d.mediaType === MediaType.blockFile) {
    const r = { at: 0, size: d.size, key: digestKey(d) };
    return d.size >= MIN_COPY && (!want || want.keys.has(r.key)) ? [r] : [];
  }
  const stream = await readBlob(d, src);
  try {
    return await tarRanges(stream, `blob ${d.digest}`, want);
  } catch (err) {
    if (err instanceof BlockportError && (err.code === 'ECORRUPT' || err.code === 'EUNSUPPORTED')) return [];
    throw err;
  } finally {
    await closeBlob(stream);
  }
}

/** Where a range's bytes are held: a blob the receiver has, and the offset in it. */
export interface Placement {
  base: Descriptor;
  offset: number;
}

/** At most this many places are kept per key: enough to continue a run of copies from one base. */
const PLACES = 4;

/**
 * Indexes the held blobs (`held`, read from `src`) for the keys in `wanted`: key -> places holding
 * those bytes. File blocks are indexed without reading; plain tars are read once each.
 */
export async function indexHeld(held: Descriptor[], src: BlobSource, wanted: Wanted, opts: { signal?: AbortSignal; onBlob?: (d: Descriptor) => void } = {}): Promise<Map<string, Placement[]>> {
  const index = new Map<string, Placement[]>();
  for (const h of held) {
    opts.signal?.throwIfAborted();
    if (!isRecipeKind(h.mediaType)) continue;
    for (const r of await blobRanges(h, src, wanted)) {
      const places = index.get(r.key);
      if (!places) index.set(r.key, [{ base: h, offset: r.at }]);
      else if (places.length < PLACES) places.push({ base: h, offset: r.at });
    }
    if (isPlainTar(h.mediaType)) opts.onBlob?.(h);
  }
  return index;
}
