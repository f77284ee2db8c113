import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { digestHex } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { TarReader } from '../tar/reader.js';
import type { BlobSource } from './encode.js';

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

/**
 * The ranges of a tar stream, in order: each entry, then (for a regular file of MIN_COPY bytes
 * or more) its data, both hashed in one read. `keep` filters ranges as they are found, so an index
 * of held blobs holds only what some new blob needs.
 */
export async function tarRanges(stream: AsyncIterable<Buffer>, what: string, keep: (key: string) => boolean = () => true): Promise<BlobRange[]> {
  const out: BlobRange[] = [];
  for await (const e of new TarReader(stream, what).entries()) {
    const hash = createHash('sha256');
    for await (const c of e.body()) hash.update(c);
    const sha = hash.digest();
    const size = e.raw.length + e.header.size + e.padding!.length;
    const entry = { at: e.offset, size, key: entryKey(size, e.raw, sha, e.padding!) };
    if (keep(entry.key)) out.push(entry);
    if (e.header.type !== 'file' || e.header.size < MIN_COPY) continue;
    const body = { at: e.offset + e.raw.length, size: e.header.size, key: dataKey(e.header.size, sha) };
    if (keep(body.key)) out.push(body);
  }
  return out;
}

/**
 * The ranges of a blob a recipe may use: a file block is one range keyed by its digest (nothing
 * read); a plain tar is read (verified) and split by tarRanges. A tar blockport cannot parse
 * gives none: it simply travels without a recipe. Digest mismatches are errors.
 */
export async function blobRanges(d: Descriptor, src: BlobSource, keep?: (key: string) => boolean): Promise<BlobRange[]> {
  if (d.mediaType === MediaType.blockFile) {
    const r = { at: 0, size: d.size, key: digestKey(d) };
    return d.size >= MIN_COPY && (!keep || keep(r.key)) ? [r] : [];
  }
  const stream: Readable = await src.open(d);
  try {
    return await tarRanges(stream, `blob ${d.digest}`, keep);
  } catch (err) {
    if (err instanceof BlockportError && (err.code === 'ECORRUPT' || err.code === 'EUNSUPPORTED')) return [];
    throw err;
  } finally {
    stream.destroy();
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
export async function indexHeld(held: Descriptor[], src: BlobSource, wanted: ReadonlySet<string>, opts: { signal?: AbortSignal; onBlob?: (d: Descriptor) => void } = {}): Promise<Map<string, Placement[]>> {
  const index = new Map<string, Placement[]>();
  const keep = (k: string) => wanted.has(k);
  for (const h of held) {
    opts.signal?.throwIfAborted();
    if (!isRecipeKind(h.mediaType)) continue;
    for (const r of await blobRanges(h, src, keep)) {
      const places = index.get(r.key);
      if (!places) index.set(r.key, [{ base: h, offset: r.at }]);
      else if (places.length < PLACES) places.push({ base: h, offset: r.at });
    }
    if (isPlainTar(h.mediaType)) opts.onBlob?.(h);
  }
  return index;
}
