import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { LayerStats } from '../blocks/blockify.js';
import { uniqueBlocks, writeBlockFormImage } from '../blocks/packaging.js';
import { rulesFor } from '../blocks/rules.js';
import { CopyThreads } from '../cas/copy-plan.js';
import type { Digest } from '../digest/digest.js';
import { HashingStream } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { openUncompressed } from '../oci/compression.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import { Annotation, MediaType, compressionOf, isBlockLayer } from '../oci/media-types.js';
import { putJson } from '../oci/json.js';
import { openImage, openWriter, parseRef, transportOf } from '../oci/transport.js';
import type { Descriptor, Platform } from '../oci/types.js';
import { minSizeOf, validateConfig, type BuildConfig } from './config.js';
import { hostPlatform, imageConfig, parsePlatform, sourceDateEpoch } from './image-config.js';
import type { EntryMeta } from './layer-tar.js';
import { buildLayer } from './layer-build.js';
import { addSource, LayerTree } from './source-tree.js';

export interface BuildOptions {
  /** Where SOURCE_DATE_EPOCH is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  onProgress?: (p: { layer: number; layers: number; bytes: number }) => void;
  signal?: AbortSignal;
}

/** One layer `build` made. */
export interface BuiltLayer extends LayerStats {
  name: string;
  /** Entries of the standard layer (files, folders, symlinks). */
  files: number;
}

export interface BuildResult {
  /** Where the image was written. */
  destination: string;
  /** What the tag names: the block-form image's transport manifest (docs/spec.md 5.1). */
  top: Descriptor;
  manifest: Descriptor;
  config: Descriptor;
  platform: Platform;
  baseLayers: number;
  layers: BuiltLayer[];
  /** Every block of the image (the base's included), sorted by digest. */
  blocks: Descriptor[];
}

/** "UID[:GID]" as numbers (0:0 when absent). */
function owner(chown: string | undefined): { uid: number; gid: number } {
  if (chown === undefined) return { uid: 0, gid: 0 };
  const m = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(chown);
  if (!m) throw new BlockportError('EUSAGE', `--chown ${JSON.stringify(chown)} must be UID[:GID] (numbers)`);
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

/** The trees of every layer, walked and checked before anything is written. */
async function collect(c: BuildConfig): Promise<LayerTree[]> {
  const trees: LayerTree[] = [];
  for (const [i, l] of c.layers.entries()) {
    const tree = new LayerTree();
    for (const f of l.files) await addSource(tree, f, `${l.name ? `layer ${l.name}` : `--add ${f.src}:${f.dest}`}`, c.baseDir);
    trees.push(tree);
    if (tree.size === 0) throw new BlockportError('EUSAGE', `layer ${l.name ?? i + 1} is empty`);
  }
  return trees;
}

/** Base layers are kept as they are; a block-form base keeps its blocks. */
async function copyBase(base: ImageReader, dst: ImageWriter): Promise<{ layers: Descriptor[]; blocks: Descriptor[] }> {
  const layers: Descriptor[] = [];
  for (const [i, l] of base.manifest.layers.entries()) {
    await dst.copyBlob(base, l);
    let annotations = l.annotations;
    if (annotations?.[Annotation.layerSize] === undefined) {
      const size = isBlockLayer(l.mediaType) ? undefined : await standardSize(base, l, base.config.rootfs.diff_ids[i]);
      if (size !== undefined) annotations = { ...annotations, [Annotation.layerSize]: String(size) };
    }
    layers.push({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(annotations ? { annotations } : {}) });
  }
  for (const b of base.manifest.blocks ?? []) await dst.copyBlob(base, b);
  await dst.copyBlob(base, base.manifest.config);
  return { layers, blocks: base.manifest.blocks ?? [] };
}

/** The uncompressed size of a base layer (which every layer descriptor blockport writes records), checked against its diff_id on the way. */
async function standardSize(base: ImageReader, l: Descriptor, diffId: Digest): Promise<number> {
  if (compressionOf(l.mediaType) === 'none' && l.digest === diffId) return l.size;
  const hashing = new HashingStream();
  await pipeline(await openUncompressed(await base.openBlob(l), `layer ${l.digest}`), hashing, new Writable({ write: (_c, _e, cb) => cb() }));
  if (hashing.summary.digest !== diffId) throw new BlockportError('EDIGEST', `${base.ref}: layer ${l.digest} does not match its diff_id ${diffId}`, { subject: l.digest });
  return hashing.summary.size;
}

function history(l: BuildConfig['layers'][number]): string {
  // DESTs only: host paths differ between build machines, and would change the config's digest
  return `blockport build --add ${l.files.map((f) => f.dest).join(',')}`;
}

/**
 * Builds a block-form image from build output (jars, node_modules, site-packages...) without
 * Docker: each layer is a deterministic tar of its files (sorted, mtime SOURCE_DATE_EPOCH or 0,
 * owner 0:0 or `chown`, modes 0644/0755), blockified with the same code and rules as `blockify`,
 * so equal files and packages give the blocks blockify gives. Everything is checked (sources,
 * symlinks, the base) before anything is written; the image is tagged only when complete.
 *
 * ```ts
 * import { build } from 'blockport';
 * await build({ from: 'scratch', layers: [{ name: 'deps', files: [{ src: 'target/lib', dest: '/app/lib' }] }],
 *   entrypoint: ['java', '-jar', '/app/app.jar'], preset: ['java'], to: 'app:1' });
 * ```
 */
export async function build(config: BuildConfig, options: BuildOptions = {}): Promise<BuildResult> {
  const c = { ...validateConfig(stripBase(config), 'build config'), baseDir: config.baseDir } as BuildConfig;
  if (!c.from) throw new BlockportError('EUSAGE', 'build: no base image (--from REF, or --from scratch)');
  if (!c.to) throw new BlockportError('EUSAGE', 'build: no destination (--tag NAME:TAG or a DST reference)');
  c.layers ??= [];
  const target = parseRef(c.to);
  const compression = c.compress ?? transportOf(target).layerCompression;
  const rules = rulesFor(c.preset ?? [], { minSize: minSizeOf(c.minSize), include: c.include, exclude: c.exclude });
  const created = sourceDateEpoch(options.env ?? process.env);
  const meta: EntryMeta = { mtime: created, ...owner(c.chown) };
  const wanted = c.platform ? parsePlatform(c.platform) : undefined;
  const trees = await collect(c);
  const base = c.from === 'scratch' ? undefined : await openImage(c.from);
  try {
    const platform = platformFor(base, wanted);
    const dst = await openWriter(target, c.to);
    const tmp = await fsp.mkdtemp(join(tmpdir(), 'blockport-build-'));
    // three: one writes the layer tar or the block-form layer, one hashes the layer, one writes blocks
    const threads = CopyThreads.start(3);
    try {
      const kept = base ? await copyBase(base, dst) : { layers: [], blocks: [] };
      const layers: Descriptor[] = [...kept.layers];
      const blocks: Descriptor[] = [...kept.blocks];
      const built: BuiltLayer[] = [];
      let bytes = 0;
      for (const [i, tree] of trees.entries()) {
        options.signal?.throwIfAborted();
        const entries = tree.sorted();
        const onBytes = (n: number) => options.onProgress?.({ layer: i, layers: trees.length, bytes: (bytes += n) });
        const r = await buildLayer(entries, dst, kept.layers.length + i, { rules, meta, tmp, threads, compression, onBytes });
        layers.push(r.layer);
        blocks.push(...r.blocks);
        built.push({ name: c.layers[i].name ?? c.layers[i].files[0].dest, files: entries.length, ...r.stats });
      }
      const configJson = imageConfig(base?.config, c, {
        platform,
        created,
        layers: built.map((l, i) => ({ diffId: l.diffId, createdBy: history(c.layers[i]), comment: c.layers[i].name })),
      });
      const configDesc = await putJson(dst, MediaType.ociConfig, configJson);
      const all = uniqueBlocks(blocks);
      const written = await writeBlockFormImage(dst, { config: configDesc, configJson, layers, blocks: all });
      await dst.commit(written.top);
      return { destination: c.to, ...written, config: configDesc, platform, baseLayers: kept.layers.length, layers: built, blocks: all };
    } catch (err) {
      await dst.abort();
      throw err;
    } finally {
      await threads.close();
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  } finally {
    await base?.close();
  }
}

/** validateConfig checks the JSON keys; baseDir is the library caller's, not a file key. */
function stripBase(c: BuildConfig): Record<string, unknown> {
  const { baseDir: _b, ...rest } = c;
  return rest;
}

/** The platform recorded: --platform (which must match a base's), else the base's, else this machine's. */
function platformFor(base: ImageReader | undefined, wanted: Platform | undefined): Platform {
  if (!base) return wanted ?? hostPlatform();
  const have: Platform = { os: base.config.os ?? 'linux', architecture: base.config.architecture ?? hostPlatform().architecture, ...(base.config.variant ? { variant: base.config.variant } : {}) };
  if (wanted && (wanted.os !== have.os || wanted.architecture !== have.architecture || (wanted.variant && wanted.variant !== have.variant))) {
    throw new BlockportError('EUNSUPPORTED', `${base.ref} is ${have.os}/${have.architecture}${have.variant ? `/${have.variant}` : ''}, not ${wanted.os}/${wanted.architecture}${wanted.variant ? `/${wanted.variant}` : ''}`);
  }
  return have;
}
