import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import { openFile } from '../cas/blob-store.js';
import { readPieces, type Piece } from '../cas/copy-plan.js';
import type { Digest } from '../digest/digest.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { openUncompressed } from '../oci/compression.js';
import type { FileSpot, ImageReader } from '../oci/image.js';
import { MediaType, compressionOf, isBlockLayer } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import type { TarHeader } from '../tar/header.js';
import { LayerGuard, cleanPath } from '../tar/path.js';
import { FileBytes } from '../tar/bytes.js';
import { TarReader, paddingOf } from '../tar/reader.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';
import { coalesce } from '../chunk.js';
import type { BlockAccess } from './block-access.js';
import { importedPath, MAX_IMPORT_ENTRY, parseImportEntry, type ImportEntry } from './import-entry.js';

/** Parses raw header bytes kept in an import entry and checks they describe `path` with `size` bytes; gives the header. */
async function checkRaw(raw: Buffer, path: string, size: number, type: TarHeader['type'] | 'file', where: string): Promise<TarHeader> {
  const reader = new TarReader([raw, END_OF_ARCHIVE], `${where}: raw header`);
  let header: TarHeader | undefined;
  let rawLen = 0;
  let global = false;
  for await (const e of reader.entries()) {
    header = e.header;
    rawLen = e.raw.length;
    global = e.global;
    break;
  }
  // a global header would change how every later entry of the layer reads (docs/spec.md 6.5)
  if (!header || rawLen !== raw.length || global || header.type === 'other') {
    throw new BlockportError('ECORRUPT', `${where}: raw header for /${path} is malformed`, { subject: where });
  }
  const got = cleanPath(header.path, where);
  if (got !== path) throw new BlockportError('EUNSAFE', `${where}: raw header names /${got}, not /${path}`, { subject: where });
  const asFile = (t: string) => (t === 'contiguous' ? 'file' : t);
  if (asFile(header.type) !== asFile(type)) {
    throw new BlockportError('EUNSAFE', `${where}: raw header for /${path} is a ${header.type}, the block holds a ${type}`, { subject: where });
  }
  if (header.size !== size) throw new BlockportError('ECORRUPT', `${where}: raw header for /${path} says ${header.size} bytes, block has ${size}`, { subject: where });
  return header;
}

/** A header made from an import's metadata lines (images built from artifacts carry no raw bytes). */
function synthesize(e: ImportEntry, path: string, base: Partial<TarHeader> & Pick<TarHeader, 'type' | 'size'>): Buffer {
  const pax = new Map<string, Buffer>();
  for (const [k, v] of e.meta.xattrs) pax.set(`SCHILY.xattr.${k}`, v);
  return encodeHeader({
    path, type: base.type, size: base.size, linkname: base.linkname, devmajor: base.devmajor, devminor: base.devminor,
    mode: e.meta.mode ?? base.mode ?? (base.type === 'dir' ? 0o755 : 0o644),
    uid: e.meta.uid ?? 0, gid: e.meta.gid ?? 0, mtime: e.meta.mtime ?? 0, uname: e.meta.uname, gname: e.meta.gname, pax,
  });
}

async function* fileImport(e: ImportEntry, access: BlockAccess, where: string, guard: LayerGuard): AsyncGenerator<Piece> {
  const d = access.descriptor(e.block, where, MediaType.blockFile);
  if (d.size !== e.size) throw new BlockportError('ECORRUPT', `${where}: size ${e.size} differs from block ${d.digest} (${d.size} bytes)`, { subject: where });
  guard.check(e.raw ? await checkRaw(e.raw, e.path, d.size, 'file', where) : { path: e.path, type: 'file', linkname: '' });
  yield e.raw ?? synthesize(e, e.path, { type: 'file', size: d.size });
  const spot = access.spotOf(d);
  yield { path: spot.path, offset: spot.offset, size: d.size };
  yield padding(d.size);
}

async function* dirImport(e: ImportEntry, access: BlockAccess, where: string, guard: LayerGuard): AsyncGenerator<Piece> {
  const d = access.descriptor(e.block, where, MediaType.blockDir);
  const idx = await access.dirIndex(d);
  const members = e.members ?? [{ rel: '.' }, ...[...idx.keys()].map((rel) => ({ rel }))];
  for (const m of members) {
    const path = m.rel === '.' ? e.path : `${e.path}/${m.rel}`;
    const loc = m.rel === '.' ? undefined : idx.get(m.rel);
    if (m.rel !== '.' && !loc) throw new BlockportError('ECORRUPT', `${where}: member ${m.rel} is not in block ${d.digest}`, { subject: d.digest });
    const size = loc?.header.size ?? 0;
    // the entry the runtime will unpack: the raw header's name and link target when there is one
    guard.check(m.raw ? await checkRaw(m.raw, path, size, loc?.header.type ?? 'dir', where) : { path, type: loc?.header.type ?? 'dir', linkname: loc?.header.linkname ?? '' });
    yield m.raw ?? synthesize(e, path, loc?.header ?? { type: 'dir', size: 0 });
    if (loc && size > 0) {
      const spot = access.spotOf(d);
      yield { path: spot.path, offset: spot.offset + loc.offset, size };
    }
    yield padding(size);
  }
}

/**
 * A layer blob for splicing. An uncompressed block-form layer kept in a file is read without
 * hashing it: every byte taken from it lands in the standard layer, which materialize checks
 * against the diff_id (and a mismatch then names the corrupt blob, see layerIsCorrupt); its
 * entries get the same safety checks either way. That saves a hash of every spliced layer.
 */
async function openLayer(src: ImageReader, desc: Descriptor): Promise<Readable> {
  const spot = isBlockLayer(desc.mediaType) && compressionOf(desc.mediaType) === 'none' ? await src.locate(desc) : undefined;
  if (spot && spot.size > 0) return openFile(spot.path, spot.offset, spot.offset + spot.size - 1);
  return src.openBlob(desc);
}

/** Whether a layer blob no longer matches its digest (asked after a diff_id mismatch). */
export async function layerIsCorrupt(src: ImageReader, desc: Descriptor): Promise<boolean> {
  try {
    for await (const _ of await src.openBlob(desc));
    return false;
  } catch {
    return true;
  }
}

/**
 * The bytes of the standard layer `desc` stands for. A layer that is not in block form is only
 * decompressed; a block-form layer is spliced: its entries copied verbatim, each import entry
 * replaced by the original header and the block's bytes, then the original tail.
 */
export async function* standardLayer(src: ImageReader, desc: Descriptor, access: BlockAccess): AsyncGenerator<Buffer> {
  const input = await openUncompressed(await openLayer(src, desc), `layer ${desc.digest}`);
  if (!isBlockLayer(desc.mediaType)) yield* input;
  else yield* coalesce(readPieces(splice(new TarReader(input, `layer ${desc.digest}`), desc, access)));
}

/**
 * Where `layerPlan` can read this layer from: an uncompressed blob kept in a file (and then its
 * blocks are files too, see BlockAccess). Undefined: splice it as a stream (`standardLayer`).
 */
export async function planSpot(src: ImageReader, desc: Descriptor): Promise<FileSpot | undefined> {
  return compressionOf(desc.mediaType) === 'none' ? src.locate(desc) : undefined;
}

/**
 * The standard layer of `desc` as a copy plan (see copy-plan.ts), for a layer lying at `spot`
 * (see planSpot): runs of verbatim entries become one range of the layer file (their data is
 * skipped, not read), imports become their header and the block's range. The same checks as
 * `standardLayer`; the bytes are checked against the diff_id by whoever runs the plan.
 */
export async function* layerPlan(spot: FileSpot, desc: Descriptor, access: BlockAccess): AsyncGenerator<Piece> {
  if (!isBlockLayer(desc.mediaType)) {
    yield { path: spot.path, offset: spot.offset, size: desc.size };
    return;
  }
  const fh = await fsp.open(spot.path, 'r').catch((err) => {
    throw fromSystemError(err, spot.path);
  });
  try {
    const what = `layer ${desc.digest}`;
    yield* splice(new TarReader(new FileBytes(fh.fd, desc.size, what, spot.offset), what), desc, access, spot);
  } finally {
    await fh.close();
  }
}

/**
 * The spliced layer, piece by piece (headers, bodies, padding, block ranges). With `layerFile`
 * (the reader reads that file), verbatim entries are ranges of it and their data is not read.
 */
async function* splice(reader: TarReader, desc: Descriptor, access: BlockAccess, layerFile?: FileSpot): AsyncGenerator<Piece> {
  // judges every entry of the standard layer written, imported ones included (their real headers)
  const guard = new LayerGuard(`layer ${desc.digest}`);
  for await (const entry of reader.entries()) {
    const h = entry.header;
    const imported = h.type === 'file' && !entry.global ? importedPath(h.path) : undefined;
    if (imported === undefined) {
      if (!entry.global) guard.check(h);
      if (layerFile !== undefined) {
        yield { path: layerFile.path, offset: layerFile.offset + entry.offset, size: entry.raw.length + h.size + paddingOf(h.size) };
        continue;
      }
      yield entry.raw;
      yield* entry.body();
      yield entry.padding!;
      continue;
    }
    const name = cleanPath(h.path);
    const where = `layer ${desc.digest.slice(0, 19)}: /${name}`;
    // refused before it is read (docs/spec.md 6.2: a limit, EUNSAFE)
    if (h.size > MAX_IMPORT_ENTRY) throw new BlockportError('EUNSAFE', `${where}: import entry of ${h.size} bytes is larger than ${MAX_IMPORT_ENTRY}`, { subject: name });
    const body: Buffer[] = [];
    for await (const chunk of entry.body()) body.push(chunk); // at most MAX_IMPORT_ENTRY bytes, checked above
    const e = parseImportEntry(Buffer.concat(body), name);
    yield* e.kind === 'file' ? fileImport(e, access, where, guard) : dirImport(e, access, where, guard);
  }
  yield* reader.tailChunks();
}

/** Turns a diff_id mismatch into an error naming the corrupt block-form layer or block when one is. */
export async function explainMismatch(err: unknown, src: ImageReader, access: BlockAccess, i: number): Promise<never> {
  if (err instanceof BlockportError && err.code === 'EDIGEST') {
    // layers are spliced two at a time: check every block-form one, the failing layer first
    const order = src.manifest.layers.map((_, k) => k).sort((a, b) => Number(b === i) - Number(a === i));
    for (const k of order) {
      const layer = src.manifest.layers[k];
      if (isBlockLayer(layer.mediaType) && (await layerIsCorrupt(src, layer))) {
        throw new BlockportError('EDIGEST', `layer blob ${layer.digest} is corrupt (layer ${k + 1} does not reproduce its diff_id)`, { subject: layer.digest, cause: err });
      }
    }
    const bad = await access.findCorrupt(access.blocks.keys());
    if (bad) throw new BlockportError('EDIGEST', `block ${bad} is corrupt (layer ${i + 1} does not reproduce its diff_id)`, { subject: bad, cause: err });
  }
  throw err;
}

/** The blocks a layer's import entries name (for naming a corrupt block after a mismatch). */
export function blocksOf(access: BlockAccess): Digest[] {
  return [...access.blocks.keys()];
}
