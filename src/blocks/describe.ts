import { Readable } from 'node:stream';
import type { Digest } from '../digest/digest.js';
import { openUncompressed } from '../oci/compression.js';
import type { ImageReader } from '../oci/image.js';
import { readSmall } from '../oci/json.js';
import { Annotation, isBlockLayer } from '../oci/media-types.js';
import type { Platform } from '../oci/types.js';
import { cleanPath } from '../tar/path.js';
import { TarReader } from '../tar/reader.js';
import { importedPath, MAX_IMPORT_ENTRY, parseImportEntry } from './import-entry.js';
import { describeRecipe, parseRecipe } from '../fidelity/recipe.js';
import { sourceDigests } from '../fidelity/source.js';
import { platformEntries } from '../oci/platforms.js';
import { formatPlatform } from '../oci/resolve.js';

export interface ImportSummary {
  path: string;
  kind: 'file' | 'dir';
  block: Digest;
  size: number;
}

export interface ImageDescription {
  ref: string;
  manifestDigest: Digest;
  configDigest: Digest;
  platform?: Platform;
  blockForm: boolean;
  /** Of a block-form image: the vendor's manifest (and index) digests it keeps, so materialize can give them back (docs/spec.md 17). */
  source?: { manifest?: Digest; index?: Digest };
  /** The platforms of the index the reference names, when it names one. */
  platforms?: string[];
  /** Bytes of the layer blobs plus blocks: what a full transfer of this form costs. */
  storedSize: number;
  layers: Array<{
    index: number;
    mediaType: string;
    digest: Digest;
    size: number;
    diffId: Digest;
    uncompressedSize?: number;
    imports?: ImportSummary[];
    /** The compressor that re-creates the vendor's blob of this block-form layer (docs/spec.md 17.2). */
    recompress?: string;
  }>;
  blocks: { count: number; size: number };
}

/** Lists the import entries of a block-form layer (the layer is small; blocks are not read). */
async function importsOf(src: ImageReader, index: number, blockSizes: Map<Digest, number>): Promise<ImportSummary[]> {
  const desc = src.manifest.layers[index];
  const reader = new TarReader(await openUncompressed(await src.openBlob(desc), desc.digest), `layer ${desc.digest}`);
  const out: ImportSummary[] = [];
  for await (const e of reader.entries()) {
    const name = cleanPath(e.header.path);
    if (e.header.type !== 'file' || importedPath(name) === undefined) continue;
    const imp = parseImportEntry(await readSmall(Readable.from(e.body()), name, MAX_IMPORT_ENTRY), name);
    out.push({ path: `/${imp.path}`, kind: imp.kind, block: imp.block, size: blockSizes.get(imp.block) ?? 0 });
  }
  return out;
}

/** What `blockport inspect` shows: layers, blocks, import entries and sizes. */
export async function describeImage(src: ImageReader, opts: { imports?: boolean } = {}): Promise<ImageDescription> {
  const blocks = src.manifest.blocks ?? [];
  const blockSizes = new Map(blocks.map((b) => [b.digest, b.size] as const));
  const layers: ImageDescription['layers'] = [];
  for (const [i, l] of src.manifest.layers.entries()) {
    const u = l.annotations?.[Annotation.layerSize];
    layers.push({
      index: i,
      mediaType: l.mediaType,
      digest: l.digest,
      size: l.size,
      diffId: src.config.rootfs.diff_ids[i],
      ...(u ? { uncompressedSize: Number(u) } : {}),
      ...(opts.imports !== false && isBlockLayer(l.mediaType) ? { imports: await importsOf(src, i, blockSizes) } : {}),
      ...(l.annotations?.[Annotation.layerRecompress] ? { recompress: describeRecipe(parseRecipe(l.annotations[Annotation.layerRecompress], `${src.ref}: layers[${i}]`)) } : {}),
    });
  }
  const blockBytes = blocks.reduce((n, b) => n + b.size, 0);
  return {
    ref: src.ref,
    manifestDigest: src.manifestDescriptor.digest,
    configDigest: src.manifest.config.digest,
    platform: src.config.os ? { os: src.config.os, architecture: src.config.architecture ?? '' } : undefined,
    blockForm: src.manifest.blocks !== undefined,
    ...(src.manifest.blocks && { source: sourceDigests(src) }),
    ...(platformEntries(src).length > 1 && { platforms: platformEntries(src).map((m) => formatPlatform(m.platform)) }),
    storedSize: src.manifest.layers.reduce((n, l) => n + l.size, 0) + blockBytes,
    layers,
    blocks: { count: blocks.length, size: blockBytes },
  };
}
