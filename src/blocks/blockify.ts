import { createWriteStream, promises as fsp, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { openFile, type StoredBlob } from '../cas/blob-store.js';
import { CopyThreads, readPieces, type Piece } from '../cas/copy-plan.js';
import { parseDigest, type Digest } from '../digest/digest.js';
import { HashingStream } from '../digest/verify.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { compressor, openUncompressed } from '../oci/compression.js';
import type { FileSpot, ImageReader, ImageWriter } from '../oci/image.js';
import { Annotation, MediaType, blockLayerType, ociLayerType, type Compression } from '../oci/media-types.js';
import type { Descriptor, Platform } from '../oci/types.js';
import type { TarHeader } from '../tar/header.js';
import { LayerGuard, isWithin } from '../tar/path.js';
import { isUtf8Name } from '../tar/names.js';
import { FileBytes } from '../tar/bytes.js';
import { TarReader, paddingOf, type TarEntry } from '../tar/reader.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';
import { FolderSpool } from './folder-spool.js';
import { formatImportEntry, importEntryName, IMPORT_PREFIX, MAX_IMPORT_ENTRY, type ImportEntry } from './import-entry.js';
import { EMPTY_CONFIG, uniqueBlocks, writeBlockFormImage, writeBlockFormIndex, type BlockFormParts } from './packaging.js';
import { layerRecipe } from '../fidelity/layer-recipe.js';
import { describeRecipe, formatRecipe } from '../fidelity/recipe.js';
import { putSources, sourceManifest, wholeIndex } from '../fidelity/source.js';
import { imagesOf } from '../oci/platforms.js';
import { formatPlatform, platformOf } from '../oci/resolve.js';
import { RuleMatcher, type BlockRules } from './rules.js';
import { CHUNK, coalesce } from '../chunk.js';

export interface BlockifyOptions {
  rules: BlockRules;
  /** Compression of the block-form layers written (default none: bundles compress and delta them). */
  compression?: Compression;
  onProgress?: (p: { layer: number; layers: number; bytes: number }) => void;
  signal?: AbortSignal;
  /**
   * Keep the source manifest (and index) bytes and find, for each compressed layer put in block
   * form, the compressor that re-creates its blob (docs/spec.md section 17). Default true.
   */
  original?: boolean;
  /** Of a multi-platform index, the platforms to blockify; default all. */
  platforms?: Platform[];
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
  /** The compressor that re-creates the layer's compressed blob, when one was found (docs/spec.md 17.2). */
  recipe?: string;
  /** Why the compressed blob cannot be re-created, when it cannot: materialize then writes a new one. */
  unreproducible?: string;
  /** The image's platform, when several were blockified. */
  platform?: string;
}

export interface BlockifyResult {
  /** What the destination tag names: the transport manifest (docs/spec.md 5.1), or the index of several (5.4). */
  top: Descriptor;
  /** The block-form manifest (the first platform's, when several). */
  manifest: Descriptor;
  /** Each platform's block-form manifest, when the source was a multi-platform index. */
  platforms?: { platform: string; manifest: Descriptor }[];
  layers: LayerStats[];
  blocks: Descriptor[];
}

const WHITEOUT = '.wh.';

function base(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

function isZero(b: Buffer): boolean {
  return !b.some((x) => x !== 0);
}

/**
 * Thrown when a streamed file went into a block and then showed non-zero padding, which an
 * import entry cannot reproduce: blockifyLayer reads the layer again, keeping such files as they are.
 */
class PaddingRetry extends Error {
  constructor(readonly path: string) {
    super(`tar entry ${path}: non-zero padding`);
  }
}

/** Whether `err` is a PaddingRetry, or wraps one (a blob writer may wrap what its stream threw). */
function isPaddingRetry(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) if (e instanceof PaddingRetry) return true;
  return false;
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

/**
 * How a layer's entries are reached. Streamed: bodies are chunks of the input stream, blocks are
 * streamed into `dst`. By position (the layer is a range of a plain file, uncompressed): bodies
 * are ranges of that file, and blocks and the block-form layer are copy plans that copy threads
 * write and hash, so no file byte passes through the main thread.
 */
interface LayerInput {
  /** Whether blocks may be written while the layer is read on (the entry bodies stay readable). */
  parallel: boolean;
  /** An entry's data: chunks, or one range of the input file. */
  body(entry: TarEntry): AsyncIterable<Piece>;
  /** An entry's padding, once its body has been read (streamed) or at any time (by position). */
  padding(entry: TarEntry): Buffer;
  /**
   * The whole entry as it stands (header, data, padding) as one range of the input file, when
   * the input is one: nothing is read, and runs of such entries merge into one copy.
   */
  whole?(entry: TarEntry): Piece;
  /** Stores a blob made of these pieces. */
  put(pieces: AsyncIterable<Piece>): Promise<StoredBlob>;
}

async function* one(p: Piece): AsyncGenerator<Piece> {
  yield p;
}

/** Bytes known later: an import entry waiting for its block to be written and named. */
interface Later {
  later: Promise<Buffer>;
}

/** The bytes of `source` in order, waiting for each Later only when it is next. */
async function* settled(source: AsyncIterable<Piece | Later>): AsyncGenerator<Piece> {
  for await (const p of source) yield Buffer.isBuffer(p) || !('later' in p) ? p : await p.later;
}

/**
 * The pieces of `source` in order, read up to `ahead` Laters in advance: the blocks behind them
 * are written meanwhile, on other copy threads, while the layer is read on. A failure of a
 * pending Later surfaces when it is reached; stopping early stops the reading.
 */
async function* readAhead(source: AsyncIterable<Piece | Later>, ahead: number): AsyncGenerator<Piece> {
  const queue: (Piece | Later)[] = [];
  let pending = 0;
  let done = false;
  let stopped = false;
  let failure: { err: unknown } | undefined;
  let wakeReader: (() => void) | undefined;
  let wakeWriter: (() => void) | undefined;
  const wake = (w: 'reader' | 'writer') => {
    const f = w === 'reader' ? wakeReader : wakeWriter;
    if (w === 'reader') wakeReader = undefined;
    else wakeWriter = undefined;
    f?.();
  };
  const MAX_QUEUED = 4096;
  const reading = (async () => {
    try {
      for await (const p of source) {
        queue.push(p);
        if (!Buffer.isBuffer(p) && 'later' in p) {
          pending++;
          p.later.catch(() => {}); // reported when reached
        }
        wake('writer');
        while (!stopped && (pending >= ahead || queue.length >= MAX_QUEUED)) await new Promise<void>((r) => (wakeReader = r));
        if (stopped) break;
      }
    } catch (err) {
      failure = { err };
    } finally {
      done = true;
      wake('writer');
    }
  })();
  try {
    for (;;) {
      if (queue.length === 0) {
        if (done) break;
        await new Promise<void>((r) => (wakeWriter = r));
        continue;
      }
      const p = queue.shift()!;
      if (!Buffer.isBuffer(p) && 'later' in p) {
        const bytes = await p.later;
        pending--;
        wake('reader');
        yield bytes;
      } else {
        if (queue.length < MAX_QUEUED) wake('reader');
        yield p;
      }
    }
    if (failure) throw failure.err;
  } finally {
    stopped = true;
    wake('reader');
    await reading;
  }
}

function streamedInput(dst: ImageWriter): LayerInput {
  return {
    parallel: false,
    body: (entry) => entry.body(),
    padding: (entry) => entry.padding!,
    put: (pieces) => dst.putBlob(Readable.from(readPieces(pieces), { objectMode: false, highWaterMark: CHUNK })),
  };
}

function positionalInput(dst: ImageWriter, threads: CopyThreads, fd: number, spot: FileSpot): LayerInput {
  return {
    parallel: true,
    body: (entry) => one({ path: spot.path, offset: spot.offset + entry.offset + entry.raw.length, size: entry.header.size }),
    padding: (entry) => {
      const n = paddingOf(entry.header.size);
      const b = Buffer.alloc(n);
      if (n > 0 && readSync(fd, b, 0, n, spot.offset + entry.offset + entry.raw.length + entry.header.size) !== n) {
        throw new BlockportError('ECORRUPT', `${spot.path}: truncated at the padding of ${entry.header.path}`);
      }
      return b;
    },
    whole: (entry) => ({ path: spot.path, offset: spot.offset + entry.offset, size: entry.raw.length + entry.header.size + paddingOf(entry.header.size) }),
    put: (pieces) => dst.putPlan(pieces, threads),
  };
}

/** Reads one layer, writing its blocks to `dst` and giving its block-form tar as copy-plan pieces. */
class LayerBlockifier {
  readonly blocks: Descriptor[] = [];
  stats = { entries: 0, blocks: 0, newBlocks: 0, blockBytes: 0 };
  private spool?: FolderSpool;
  private readonly doneFolders = new Set<string>();
  private readonly guard: LayerGuard;
  private spools = 0;

  /** `excluded`: offsets of entries that must stay as they are (streamed files found with non-zero padding). */
  constructor(
    private readonly input: LayerInput,
    private readonly matcher: RuleMatcher,
    private readonly tmp: string,
    what: string,
    private readonly excluded: ReadonlySet<number> = new Set(),
  ) {
    this.guard = new LayerGuard(what);
  }

  /** Block writes not yet finished (positional input writes several at once). */
  readonly inflight = new Set<Promise<unknown>>();

  private putBlock(body: AsyncIterable<Piece>, mediaType: string, path: string): Promise<Descriptor> {
    // the slot is taken now, so the manifest lists blocks in layer order however writes finish
    const slot = this.blocks.push(undefined as unknown as Descriptor) - 1;
    const put = this.input.put(body).then((stored) => {
      this.stats.blocks++;
      this.stats.blockBytes += stored.size;
      if (stored.created !== false) this.stats.newBlocks++;
      const d: Descriptor = { mediaType, digest: stored.digest, size: stored.size, annotations: { [Annotation.blockPath]: `/${path}` } };
      this.blocks[slot] = d;
      return d;
    });
    this.inflight.add(put);
    put.then(() => this.inflight.delete(put), () => this.inflight.delete(put));
    return put;
  }

  /**
   * Emits one entry that is not part of a folder block: as a file block or as it was (`whole`,
   * when given). A file becomes a block only when it is a plain regular file with a UTF-8 name and
   * zero padding (an import entry reproduces nothing else); `padKnown` says whether its padding
   * can be read before its body (by position, or spooled). Streamed, it is only seen after the
   * body went into the block: then the layer is read again without that entry (PaddingRetry).
   */
  private async *emit(path: string, h: TarHeader, raw: Buffer, body: () => AsyncIterable<Piece>, pad: () => Buffer, padKnown: boolean, at?: number, whole?: () => Piece): AsyncGenerator<Piece | Later> {
    const regular = h.type === 'file' || h.type === 'contiguous';
    const plain = regular && !isSparse(h) && isUtf8Name(path) && !base(path).startsWith(WHITEOUT) && !(at !== undefined && this.excluded.has(at));
    if (plain && this.matcher.fileIsBlock(path, h.size) && (!padKnown || isZero(pad()))) {
      const entryFor = (d: Descriptor) => importEntryBytes({ path, kind: 'file', block: d.digest, size: d.size, raw, meta: { xattrs: new Map() } }, h.mtime);
      if (this.input.parallel) {
        // the block is written while the layer goes on; its import entry follows once it is named
        yield { later: this.putBlock(body(), MediaType.blockFile, path).then(entryFor) };
        return;
      }
      const d = await this.putBlock(body(), MediaType.blockFile, path);
      if (!isZero(pad())) throw new PaddingRetry(path);
      yield entryFor(d);
      return;
    }
    if (regular && base(path).startsWith(IMPORT_PREFIX)) {
      // it would read as an import entry after materialize; only a block can keep it unambiguous
      throw new BlockportError('EUNSUPPORTED', `tar entry ${path}: a ${IMPORT_PREFIX}* file that is sparse, has non-zero padding or a name that is not UTF-8 cannot be kept unambiguous`, { subject: path });
    }
    if (whole) {
      yield whole();
      return;
    }
    yield raw;
    yield* body();
    yield pad();
  }

  private async *finishFolder(): AsyncGenerator<Piece | Later> {
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
          yield* this.emit(path, m.header, m.raw, () => spool.data(m), () => m.padding, true);
        }
        return;
      }
      const d = await this.putBlock(spool.canonical(), MediaType.blockDir, `${spool.folder}/`);
      yield text(d.digest);
    } finally {
      await spool.close();
    }
  }

  async *run(entries: AsyncIterable<TarEntry>): AsyncGenerator<Piece | Later> {
    for await (const entry of entries) {
      this.stats.entries++;
      if (entry.global) {
        // a global header names no file and applies to nothing: it stays as it is, where it is
        if (this.spool) yield* this.finishFolder();
        yield this.input.whole?.(entry) ?? entry.raw;
        continue;
      }
      const h = entry.header;
      const path = this.guard.check(h);
      if (this.spool && !isWithin(path, this.spool.folder)) yield* this.finishFolder();
      if (!this.spool && path !== '') {
        const folder = this.matcher.folderOf(path, h.type === 'dir');
        if (folder && !this.doneFolders.has(folder)) this.spool = await FolderSpool.create(folder, this.tmp, this.spools++);
      }
      if (this.spool) {
        const rel = path === this.spool.folder ? '.' : path.slice(this.spool.folder.length + 1);
        await this.spool.add(rel, h, entry.raw, this.input.body(entry), () => this.input.padding(entry));
        const b = base(path);
        if (b.startsWith(WHITEOUT) || b.startsWith(IMPORT_PREFIX)) this.spool.refused = `special entry ${path}`;
        if (h.type === 'other' || h.type === 'hardlink' || h.type === 'contiguous' || isSparse(h)) this.spool.refused = `unsupported entry ${path}`;
        // folder blocks hold UTF-8 names and link targets only (docs/spec.md 3.3)
        if (!isUtf8Name(path) || !isUtf8Name(h.linkname)) this.spool.refused = `name that is not UTF-8 ${path}`;
        continue;
      }
      const whole = this.input.whole?.bind(this.input, entry);
      yield* this.emit(path, h, entry.raw, () => this.input.body(entry), () => this.input.padding(entry), this.input.parallel, entry.offset, whole);
    }
    if (this.spool) yield* this.finishFolder();
  }
}

/** What blockifying one layer gave: its blocks, and its block-form blob (stored, or in a temp file). */
interface LayerOutcome {
  b: LayerBlockifier;
  file?: string;
  stored?: StoredBlob;
  uncompressedSize: number;
}

/** Blockifies one layer, streaming it; the block-form layer goes to `dst`, or to a temp file to be compressed. */
async function blockifyLayer(
  src: ImageReader,
  dst: ImageWriter,
  desc: Descriptor,
  diffId: Digest,
  matcher: RuleMatcher,
  tmp: string,
  opts: { compression: Compression; onBytes: (n: number) => void },
): Promise<LayerOutcome> {
  try {
    return await blockifyLayerOnce(src, dst, desc, diffId, matcher, tmp, opts);
  } catch (err) {
    if (!isPaddingRetry(err)) throw err;
  }
  // rare: a chosen file had non-zero padding. Its block stays behind as garbage (never listed);
  // one pass finds every such file, one more writes the layer without making blocks of them.
  const excluded = await offsetsWithPadding(src, desc);
  return blockifyLayerOnce(src, dst, desc, diffId, matcher, tmp, { ...opts, onBytes: () => {} }, excluded);
}

/** Offsets of the entries of a layer whose padding is not all zero. */
async function offsetsWithPadding(src: ImageReader, desc: Descriptor): Promise<Set<number>> {
  const input = await openUncompressed(await src.openBlob(desc), `layer ${desc.digest}`);
  const out = new Set<number>();
  try {
    for await (const e of new TarReader(input, `layer ${desc.digest}`).entries()) {
      for await (const _ of e.body());
      if (!isZero(e.padding!)) out.add(e.offset);
    }
  } finally {
    input.destroy();
  }
  return out;
}

async function blockifyLayerOnce(
  src: ImageReader,
  dst: ImageWriter,
  desc: Descriptor,
  diffId: Digest,
  matcher: RuleMatcher,
  tmp: string,
  opts: { compression: Compression; onBytes: (n: number) => void },
  excluded?: Set<number>,
): Promise<LayerOutcome> {
  const what = `layer ${desc.digest}`;
  const input = await openUncompressed(await src.openBlob(desc), what);
  // an uncompressed layer blob is its diff_id, already verified by openBlob: do not hash it twice
  const uncompressedBlob = desc.digest === diffId;
  const hashing = new HashingStream(opts.onBytes, !uncompressedBlob);
  input.on('error', (e) => hashing.destroy(e));
  const counted = input.pipe(hashing);
  const reader = new TarReader(counted, what);
  const b = new LayerBlockifier(streamedInput(dst), matcher, tmp, what, excluded);
  async function* layerBytes() {
    yield* readPieces(settled(b.run(reader.entries())));
    yield* reader.tailChunks();
    const got = hashing.summary.digest;
    if (!uncompressedBlob && got !== diffId) {
      throw new BlockportError('EDIGEST', `layer ${desc.digest}: uncompressed digest ${got} does not match the config's diff_id ${diffId}`, { subject: desc.digest });
    }
  }
  try {
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
  } finally {
    input.destroy();
  }
}

/** Blocks written ahead of the block-form layer, by position. */
const BLOCKS_AHEAD = 4;

/** Where an uncompressed layer lies in a plain file, when blockify can read it by position. */
async function layerSpot(src: ImageReader, desc: Descriptor, diffId: Digest, compression: Compression): Promise<FileSpot | undefined> {
  if (compression !== 'none' || desc.digest !== diffId) return undefined;
  return src.locate(desc);
}

/**
 * Blockifies an uncompressed layer that lies in a plain file, by position: the main thread only
 * walks the tar headers (skipping file data); copy threads hash the layer against its diff_id,
 * and write and hash each block and the block-form layer, all at once.
 */
async function blockifyLayerAt(
  spot: FileSpot,
  dst: ImageWriter,
  desc: Descriptor,
  diffId: Digest,
  matcher: RuleMatcher,
  tmp: string,
  threads: CopyThreads,
  onBytes: (n: number) => void,
): Promise<LayerOutcome> {
  const what = `layer ${desc.digest}`;
  const verify = threads.copy('', 0, one({ path: spot.path, offset: spot.offset, size: desc.size }));
  verify.catch(() => {}); // awaited below, after the layer (a failure of the layer comes first)
  const fh = await fsp.open(spot.path, 'r').catch((err) => {
    throw fromSystemError(err, spot.path);
  });
  try {
    const reader = new TarReader(new FileBytes(fh.fd, desc.size, what, spot.offset), what);
    const b = new LayerBlockifier(positionalInput(dst, threads, fh.fd, spot), matcher, tmp, what);
    async function* counted(): AsyncGenerator<TarEntry> {
      let seen = 0;
      for await (const entry of reader.entries()) {
        onBytes(entry.offset - seen);
        seen = entry.offset;
        yield entry;
      }
      onBytes(desc.size - seen);
    }
    async function* layer(): AsyncGenerator<Piece | Later> {
      yield* b.run(counted());
      yield* reader.tailChunks();
    }
    let stored: StoredBlob;
    try {
      stored = await dst.putPlan(readAhead(layer(), BLOCKS_AHEAD), threads);
    } finally {
      // no block may still be written once the threads stop (its temp file would stay behind)
      await Promise.allSettled([...b.inflight]);
    }
    const got = await verify;
    if (got.digest !== diffId || got.size !== desc.size) {
      throw new BlockportError('EDIGEST', `${what}: digest ${got.digest} (${got.size} bytes) does not match its diff_id ${diffId}`, { subject: desc.digest });
    }
    return { b, stored, uncompressedSize: desc.size };
  } finally {
    await fh.close();
  }
}

/** What blockify shares across the images of one run: rules, scratch folder, copy threads, progress. */
interface Run {
  compression: Compression;
  matcher: RuleMatcher;
  tmp: string;
  threads(): CopyThreads;
  onBytes(layer: number, layers: number, n: number): void;
}

/** Blockifies one standard image's layers into `dst`; returns its block-form manifest's parts. */
async function blockifyImage(src: ImageReader, dst: ImageWriter, options: BlockifyOptions, run: Run): Promise<{ parts: BlockFormParts; stats: LayerStats[] }> {
  const { compression, matcher, tmp } = run;
  const layers: Descriptor[] = [];
  const stats: LayerStats[] = [];
  const blocks: Descriptor[] = [];
  const diffIds = src.config.rootfs.diff_ids;
  for (const [i, desc] of src.manifest.layers.entries()) {
    options.signal?.throwIfAborted();
    const diffId = parseDigest(diffIds[i]);
    const onBytes = (n: number) => run.onBytes(i, diffIds.length, n);
    const spot = await layerSpot(src, desc, diffId, compression);
    const { b, file, stored: direct, uncompressedSize } = spot
      ? await blockifyLayerAt(spot, dst, desc, diffId, matcher, tmp, run.threads(), onBytes)
      : await blockifyLayer(src, dst, desc, diffId, matcher, tmp, { compression, onBytes });
    const size = String(uncompressedSize);
    let out: Descriptor;
    let original: Pick<LayerStats, 'recipe' | 'unreproducible'> = {};
    if (b.stats.blocks > 0) {
      const stored = direct ?? (await dst.putBlob(openFile(file!)));
      out = { mediaType: blockLayerType(compression), digest: stored.digest, size: stored.size, annotations: { [Annotation.diffId]: diffId, [Annotation.layerSize]: size } };
      blocks.push(...b.blocks);
      if (options.original !== false) original = await recordRecipe(src, desc, diffId, uncompressedSize, out, options.signal);
    } else {
      await dst.copyBlob(src, desc);
      out = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, annotations: { ...desc.annotations, [Annotation.layerSize]: size } };
    }
    if (file) await fsp.rm(file, { force: true });
    layers.push(out);
    stats.push({ index: i, diffId, blockified: b.stats.blocks > 0, inputSize: desc.size, outputSize: out.size, uncompressedSize, ...b.stats, ...original });
  }
  await dst.copyBlob(src, src.manifest.config);
  const config: Descriptor = { mediaType: MediaType.ociConfig, digest: src.manifest.config.digest, size: src.manifest.config.size };
  return { parts: { config, configJson: src.config, layers, blocks: uniqueBlocks(blocks) }, stats };
}

/**
 * Finds the compressor that re-creates the compressed blob `desc` from its tar (docs/spec.md
 * 17.2) and records it on the block-form layer `out`; or says why none does.
 */
async function recordRecipe(src: ImageReader, desc: Descriptor, diffId: Digest, size: number, out: Descriptor, signal?: AbortSignal): Promise<Pick<LayerStats, 'recipe' | 'unreproducible'>> {
  const search = await layerRecipe(src, desc, diffId, size, signal);
  if (!search) return {};
  if (!search.recipe) return { unreproducible: search.reason };
  out.annotations![Annotation.layerRecompress] = formatRecipe(search.recipe);
  return { recipe: describeRecipe(search.recipe) };
}

/**
 * Keeps the standard manifests of `images` (and the index of `src`, when they are all it lists)
 * byte for byte: written as blobs, named on each block-form manifest and carried by each
 * transport manifest (docs/spec.md 17.1). Returns the index kept, for the block-form index.
 */
async function keepSources(src: ImageReader, images: ImageReader[], parts: BlockFormParts[], dst: ImageWriter): Promise<Digest | undefined> {
  const index = wholeIndex(src, images.map((i) => i.manifestDescriptor.digest));
  for (const [k, img] of images.entries()) {
    const manifest = sourceManifest(img);
    parts[k].annotations = { [Annotation.sourceManifest]: manifest.descriptor.digest, ...(index && images.length === 1 && { [Annotation.sourceIndex]: index.descriptor.digest }) };
    parts[k].sources = await putSources(dst, [manifest, index]);
  }
  return index?.descriptor.digest;
}

/**
 * Turns a standard image into block form (docs/spec.md): selected files and folders become blocks
 * in `dst`, layers keep `.import.` entries in their place, the config stays byte for byte. Layers
 * where nothing is selected are copied unchanged. Every platform of a multi-platform index is
 * blockified (those of `options.platforms` when given) into one block-form index. The source's
 * manifests (and index) are kept byte for byte (section 17). The tag appears only when
 * everything is written.
 */
export async function blockify(src: ImageReader, dst: ImageWriter, options: BlockifyOptions): Promise<BlockifyResult> {
  if (src.manifest.blocks) {
    throw new BlockportError('EUNSUPPORTED', `${src.ref} is already in block form (materialize it first to blockify with other rules)`);
  }
  const tmp = await fsp.mkdtemp(join(tmpdir(), 'blockport-'));
  let bytes = 0;
  // three: one hashes the input layer, one writes the block-form layer, one writes the blocks
  let threads: CopyThreads | undefined;
  const run: Run = {
    compression: options.compression ?? 'none',
    matcher: new RuleMatcher(options.rules),
    tmp,
    threads: () => (threads ??= CopyThreads.start(3)),
    onBytes: (layer, layers, n) => {
      bytes += n;
      options.onProgress?.({ layer, layers, bytes });
    },
  };
  try {
    const images = await imagesOf(src, options.platforms);
    const done: { parts: BlockFormParts; stats: LayerStats[] }[] = [];
    for (const img of images) done.push(await blockifyImage(img, dst, options, run));
    const parts = done.map((d) => d.parts);
    const keptIndex = options.original === false ? undefined : await keepSources(src, images, parts, dst);
    const platforms = images.map((i) => formatPlatform(platformOf(i.config)));
    const stats = done.flatMap((d, k) => d.stats.map((l) => (images.length > 1 ? { ...l, platform: platforms[k] } : l)));
    const all = uniqueBlocks(parts.flatMap((p) => p.blocks));
    if (images.length === 1) {
      const written = await writeBlockFormImage(dst, parts[0]);
      await dst.commit(written.top);
      return { ...written, layers: stats, blocks: all };
    }
    const written = await writeBlockFormIndex(dst, parts, keptIndex ? { [Annotation.sourceIndex]: keptIndex } : {});
    await dst.commit(written.top);
    return { top: written.top, manifest: written.manifests[0], platforms: written.manifests.map((m, k) => ({ platform: platforms[k], manifest: m })), layers: stats, blocks: all };
  } catch (err) {
    await dst.abort();
    throw err;
  } finally {
    await threads?.close();
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

/** What `blockifyLayerFile` wrote: the layer's descriptor (block-form, or standard when nothing was selected) and its blocks. */
export interface LayerFileResult {
  layer: Descriptor;
  blocks: Descriptor[];
  stats: LayerStats;
}

/**
 * Blockifies one standard layer held uncompressed in a plain file, with the same rules and code
 * as `blockify` (so equal files and folders give equal blocks): `build` writes a layer it
 * compresses as a deterministic tar, a snapshot, then hands it here. By position (copy threads)
 * when the output is uncompressed, streamed (and compressed) otherwise.
 */
export async function blockifyLayerFile(
  file: string,
  dst: ImageWriter,
  layer: { diffId: Digest; size: number; index?: number },
  options: { rules: BlockRules; tmp: string; threads: CopyThreads; compression?: Compression; onBytes?: (n: number) => void },
): Promise<LayerFileResult> {
  const compression = options.compression ?? 'none';
  const matcher = new RuleMatcher(options.rules);
  const desc: Descriptor = { mediaType: MediaType.ociLayer, digest: layer.diffId, size: layer.size };
  const onBytes = options.onBytes ?? (() => {});
  const spot: FileSpot | undefined = compression === 'none' ? { path: file, offset: 0, size: layer.size, blobFile: false } : undefined;
  // the streamed path reads the layer through openBlob only
  const src = { ref: file, openBlob: async () => openFile(file) } as unknown as ImageReader;
  const { b, file: out, stored: direct } = spot
    ? await blockifyLayerAt(spot, dst, desc, layer.diffId, matcher, options.tmp, options.threads, onBytes)
    : await blockifyLayer(src, dst, desc, layer.diffId, matcher, options.tmp, { compression, onBytes });
  try {
    const stored = direct ?? (await dst.putBlob(openFile(out!)));
    const blockForm = b.stats.blocks > 0;
    const annotations: Record<string, string> = blockForm ? { [Annotation.diffId]: layer.diffId, [Annotation.layerSize]: String(layer.size) } : { [Annotation.layerSize]: String(layer.size) };
    const mediaType = blockForm ? blockLayerType(compression) : ociLayerType(compression);
    return {
      layer: { mediaType, digest: stored.digest, size: stored.size, annotations },
      blocks: b.blocks,
      stats: { index: layer.index ?? 0, diffId: layer.diffId, blockified: blockForm, inputSize: layer.size, outputSize: stored.size, uncompressedSize: layer.size, ...b.stats },
    };
  } finally {
    if (out) await fsp.rm(out, { force: true });
  }
}

/** One entry of a layer that exists only as parts: its header bytes, parsed header, and data as a range of some file. */
export interface LayerPart {
  raw: Buffer;
  header: TarHeader;
  data?: { path: string; offset: number; size: number };
}

/**
 * Blockifies a layer given as parts rather than as a tar file (build's source files, listed with
 * their headers): the same LayerBlockifier and rules as `blockify`, bodies read by copy threads
 * straight from the files that hold them, so the standard tar is never written. The block-form
 * layer (uncompressed) and the blocks go to `dst`; the caller hashes the standard tar for its
 * diff_id.
 */
export async function blockifyParts(
  parts: Iterable<LayerPart>,
  dst: ImageWriter,
  options: { rules: BlockRules; tmp: string; threads: CopyThreads; onBytes?: (n: number) => void },
): Promise<{ stored: StoredBlob; blocks: Descriptor[]; stats: LayerBlockifier['stats'] }> {
  const ranges = new WeakMap<TarEntry, Piece>();
  const input: LayerInput = {
    parallel: true,
    body: (entry) => {
      const r = ranges.get(entry);
      return r ? one(r) : none();
    },
    padding: (entry) => padding(entry.header.size),
    put: (pieces) => dst.putPlan(pieces, options.threads),
  };
  const b = new LayerBlockifier(input, new RuleMatcher(options.rules), options.tmp, 'the layer being built');
  async function* entries(): AsyncGenerator<TarEntry> {
    let offset = 0;
    for (const p of parts) {
      const entry: TarEntry = { header: p.header, raw: p.raw, offset, global: false, body: () => none() as AsyncGenerator<Buffer>, padding: padding(p.header.size) };
      if (p.data && p.data.size > 0) ranges.set(entry, p.data);
      offset += p.raw.length + p.header.size + paddingOf(p.header.size);
      options.onBytes?.(p.raw.length + p.header.size);
      yield entry;
    }
  }
  async function* layer(): AsyncGenerator<Piece | Later> {
    yield* b.run(entries());
    yield END_OF_ARCHIVE;
  }
  let stored: StoredBlob;
  try {
    stored = await dst.putPlan(readAhead(layer(), BLOCKS_AHEAD), options.threads);
  } finally {
    // no block may still be written once the threads stop (its temp file would stay behind)
    await Promise.allSettled([...b.inflight]);
  }
  return { stored, blocks: b.blocks, stats: b.stats };
}

async function* none(): AsyncGenerator<never> {}
