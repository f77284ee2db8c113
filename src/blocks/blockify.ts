import { createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openFile, type StoredBlob } from '../cas/blob-store.js';
import { parseDigest, type Digest } from '../digest/digest.js';
import { HashingStream } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { compressor, openUncompressed } from '../oci/compression.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import { Annotation, MediaType, blockLayerType, type Compression } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import type { TarHeader } from '../tar/header.js';
import { cleanPath, isWithin } from '../tar/path.js';
import { TarReader, type TarEntry } from '../tar/reader.js';
import { encodeHeader, padding } from '../tar/writer.js';
import { FolderSpool } from './folder-spool.js';
import { formatImportEntry, importEntryName, IMPORT_PREFIX, MAX_IMPORT_ENTRY, type ImportEntry } from './import-entry.js';
import { EMPTY_CONFIG, uniqueBlocks, writeBlockFormImage } from './packaging.js';
import { RuleMatcher, type BlockRules } from './rules.js';
import { refuseThroughSymlink } from './standard-layer.js';
import { CHUNK, coalesce } from '../chunk.js';

export interface BlockifyOptions {
  rules: BlockRules;
  /** Compression of the block-form layers written (default none: bundles compress and delta them). */
  compression?: Compression;
  onProgress?: (p: { layer: number; layers: number; bytes: number }) => void;
  signal?: AbortSignal;
}

/** What blockify did to one layer. */
export interface LayerStats {
  index: number;
  diffId: Digest;
  /** True when the layer was rewritten in block form; false when kept as it was. */
  blockified: boolean;
  /** Size of the layer blob read and of the one written. */
  inputSize: number;
  outputSize: number;
  /** Size of the standard (uncompressed) layer. */
  uncompressedSize: number;
  entries: number;
  blocks: number;
  newBlocks: number;
  blockBytes: number;
}

export interface BlockifyResult {
  index: Descriptor;
  manifest: Descriptor;
  layers: LayerStats[];
  blocks: Descriptor[];
}

const WHITEOUT = '.wh.';

function base(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

function isSparse(h: TarHeader): boolean {
  return h.typeflag === 'S' || [...h.pax.keys()].some((k) => k.startsWith('GNU.sparse'));
}

/** Header + text + padding of the import entry that replaces `path`. */
function importEntryBytes(e: ImportEntry, mtime: number): Buffer {
  const text = formatImportEntry(e);
  const head = encodeHeader({ path: importEntryName(e.path), type: 'file', size: text.length, mode: 0o644, mtime: Math.max(0, Math.floor(mtime)) });
  return Buffer.concat([head, text, padding(text.length)]);
}

/** Streams one layer, writing its blocks to `dst` and its block-form tar to `out`. */
class LayerBlockifier {
  readonly blocks: Descriptor[] = [];
  stats = { entries: 0, blocks: 0, newBlocks: 0, blockBytes: 0 };
  private spool?: FolderSpool;
  private readonly doneFolders = new Set<string>();
  /** Symlinks seen so far in this layer: materialize refuses imports below them, so none is made. */
  private readonly symlinks = new Set<string>();
  private spools = 0;

  constructor(
    private readonly dst: ImageWriter,
    private readonly matcher: RuleMatcher,
    private readonly tmp: string,
  ) {}

  private async putBlock(body: Readable, mediaType: string, path: string): Promise<Descriptor> {
    refuseThroughSymlink(path.replace(/\/$/, ''), this.symlinks, `tar entry /${path}`);
    const stored = await this.dst.putBlob(body);
    this.stats.blocks++;
    this.stats.blockBytes += stored.size;
    if (stored.created !== false) this.stats.newBlocks++;
    const d: Descriptor = { mediaType, digest: stored.digest, size: stored.size, annotations: { [Annotation.blockPath]: `/${path}` } };
    this.blocks.push(d);
    return d;
  }

  /** Emits one entry that is not part of a folder block: as a file block or as it was. */
  private async *emit(path: string, h: TarHeader, raw: Buffer, body: () => AsyncIterable<Buffer>, pad: () => Buffer, global = false): AsyncGenerator<Buffer> {
    const regular = h.type === 'file' || h.type === 'contiguous';
    const eligible = regular && !isSparse(h) && !global && !base(path).startsWith(WHITEOUT);
    if (eligible && this.matcher.fileIsBlock(path, h.size)) {
      const d = await this.putBlock(Readable.from(body()), MediaType.blockFile, path);
      if (pad().some((b) => b !== 0)) {
        throw new BlockportError('EUNSUPPORTED', `tar entry ${path}: non-zero padding after its data cannot be reproduced`, { subject: path });
      }
      yield importEntryBytes({ path, kind: 'file', block: d.digest, size: d.size, raw, meta: { xattrs: new Map() } }, h.mtime);
      return;
    }
    if (regular && base(path).startsWith(IMPORT_PREFIX)) {
      // it would read as an import entry after materialize; only a block can keep it unambiguous
      throw new BlockportError('EUNSUPPORTED', `tar entry ${path}: a ${IMPORT_PREFIX}* file that is sparse or follows a global header cannot be kept unambiguous`, { subject: path });
    }
    yield raw;
    yield* body();
    yield pad();
  }

  private async *finishFolder(): AsyncGenerator<Buffer> {
    const spool = this.spool!;
    this.spool = undefined;
    this.doneFolders.add(spool.folder);
    try {
      const real = spool.members.filter((m) => m.rel !== '.');
      const members = spool.members.map((m) => ({ rel: m.rel, raw: m.raw }));
      const own = spool.members.find((m) => m.rel === '.');
      const text = (digest: Descriptor['digest']) => importEntryBytes({ path: spool.folder, kind: 'dir', block: digest, members, meta: { xattrs: new Map() } }, own?.header.mtime ?? 0);
      // the import text must stay under the reader's limit; the folder's files then go one by one
      if (!spool.refused && text(EMPTY_CONFIG.digest).length > MAX_IMPORT_ENTRY) spool.refused = 'import text too large';
      if (spool.refused || real.length === 0) {
        for (const m of spool.members) {
          const path = m.rel === '.' ? spool.folder : `${spool.folder}/${m.rel}`;
          yield* this.emit(path, m.header, m.raw, () => spool.data(m), () => m.padding);
        }
        return;
      }
      const d = await this.putBlock(spool.canonical(), MediaType.blockDir, `${spool.folder}/`);
      yield text(d.digest);
    } finally {
      await spool.close();
    }
  }

  async *run(entries: AsyncIterable<TarEntry>): AsyncGenerator<Buffer> {
    for await (const entry of entries) {
      this.stats.entries++;
      const h = entry.header;
      const path = cleanPath(h.path, 'layer');
      if (h.type === 'symlink') this.symlinks.add(path);
      if (this.spool && !isWithin(path, this.spool.folder)) yield* this.finishFolder();
      if (!this.spool && path !== '') {
        const folder = this.matcher.folderOf(path, h.type === 'dir');
        if (folder && !this.doneFolders.has(folder)) this.spool = await FolderSpool.create(folder, this.tmp, this.spools++);
      }
      if (this.spool) {
        const rel = path === this.spool.folder ? '.' : path.slice(this.spool.folder.length + 1);
        await this.spool.add(rel, h, entry.raw, entry.body(), () => entry.padding!);
        const b = base(path);
        if (b.startsWith(WHITEOUT) || b.startsWith(IMPORT_PREFIX)) this.spool.refused = `special entry ${path}`;
        if (h.type === 'other' || h.type === 'hardlink' || isSparse(h) || entry.global) this.spool.refused = `unsupported entry ${path}`;
        continue;
      }
      yield* this.emit(path, h, entry.raw, () => entry.body(), () => entry.padding!, entry.global);
    }
    if (this.spool) yield* this.finishFolder();
  }
}

/** Blockifies one layer into a temp file; returns its stats and, if any block was made, the file. */
async function blockifyLayer(
  src: ImageReader,
  dst: ImageWriter,
  desc: Descriptor,
  diffId: Digest,
  matcher: RuleMatcher,
  tmp: string,
  opts: { compression: Compression; onBytes: (n: number) => void },
): Promise<{ b: LayerBlockifier; file?: string; stored?: StoredBlob; uncompressedSize: number }> {
  const input = await openUncompressed(await src.openBlob(desc), `layer ${desc.digest}`);
  // an uncompressed layer blob is its diff_id, already verified by openBlob: do not hash it twice
  const uncompressedBlob = desc.digest === diffId;
  const hashing = new HashingStream(opts.onBytes, !uncompressedBlob);
  input.on('error', (e) => hashing.destroy(e));
  const counted = input.pipe(hashing);
  const reader = new TarReader(counted, `layer ${desc.digest}`);
  const b = new LayerBlockifier(dst, matcher, tmp);
  async function* layerBytes() {
    yield* b.run(reader.entries());
    yield reader.tail!;
    const got = hashing.summary.digest;
    if (!uncompressedBlob && got !== diffId) {
      throw new BlockportError('EDIGEST', `layer ${desc.digest}: uncompressed digest ${got} does not match the config's diff_id ${diffId}`, { subject: desc.digest });
    }
  }
  if (uncompressedBlob && opts.compression === 'none') {
    // straight into the destination: with no block made, the bytes are the input blob's, so
    // the blob stored is the one copyBlob would bring; no temp file written and read again
    const stored = await dst.putBlob(Readable.from(coalesce(layerBytes()), { objectMode: false, highWaterMark: CHUNK }));
    return { b, stored, uncompressedSize: hashing.summary.size };
  }
  const file = join(tmp, `layer-${desc.digest.slice(7, 19)}`);
  const z = compressor(opts.compression, 'block-form layer');
  await pipeline([Readable.from(coalesce(layerBytes())), ...(z ? [z] : []), createWriteStream(file, { highWaterMark: CHUNK })] as unknown as NodeJS.ReadWriteStream[]);
  return { b, file, uncompressedSize: hashing.summary.size };
}

/**
 * Turns a standard image into block form (docs/spec.md): selected files and folders become blocks
 * in `dst`, layers keep `.import.` entries in their place, the config stays byte for byte. Layers
 * where nothing is selected are copied unchanged. The tag appears only when everything is written.
 */
export async function blockify(src: ImageReader, dst: ImageWriter, options: BlockifyOptions): Promise<BlockifyResult> {
  if (src.manifest.blocks) {
    throw new BlockportError('EUNSUPPORTED', `${src.ref} is already in block form (materialize it first to blockify with other rules)`);
  }
  const compression = options.compression ?? 'none';
  const matcher = new RuleMatcher(options.rules);
  const tmp = await fsp.mkdtemp(join(tmpdir(), 'blockport-'));
  const layers: Descriptor[] = [];
  const stats: LayerStats[] = [];
  const blocks: Descriptor[] = [];
  let bytes = 0;
  try {
    const diffIds = src.config.rootfs.diff_ids;
    for (const [i, desc] of src.manifest.layers.entries()) {
      options.signal?.throwIfAborted();
      const diffId = parseDigest(diffIds[i]);
      const onBytes = (n: number) => {
        bytes += n;
        options.onProgress?.({ layer: i, layers: diffIds.length, bytes });
      };
      const { b, file, stored: direct, uncompressedSize } = await blockifyLayer(src, dst, desc, diffId, matcher, tmp, { compression, onBytes });
      const size = String(uncompressedSize);
      let out: Descriptor;
      if (b.stats.blocks > 0) {
        const stored = direct ?? (await dst.putBlob(openFile(file!)));
        out = { mediaType: blockLayerType(compression), digest: stored.digest, size: stored.size, annotations: { [Annotation.diffId]: diffId, [Annotation.layerSize]: size } };
        blocks.push(...b.blocks);
      } else {
        await dst.copyBlob(src, desc);
        out = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, annotations: { ...desc.annotations, [Annotation.layerSize]: size } };
      }
      if (file) await fsp.rm(file, { force: true });
      layers.push(out);
      stats.push({ index: i, diffId, blockified: b.stats.blocks > 0, inputSize: desc.size, outputSize: out.size, uncompressedSize, ...b.stats });
    }
    await dst.copyBlob(src, src.manifest.config);
    const config: Descriptor = { mediaType: MediaType.ociConfig, digest: src.manifest.config.digest, size: src.manifest.config.size };
    const all = uniqueBlocks(blocks);
    const written = await writeBlockFormImage(dst, { config, configJson: src.config, layers, blocks: all });
    await dst.commit(written.index);
    return { ...written, layers: stats, blocks: all };
  } catch (err) {
    await dst.abort();
    throw err;
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}
