import { sha256, type Digest } from '../digest/digest.js';
import type { ImageWriter } from '../oci/image.js';
import { putJson } from '../oci/json.js';
import { platformOf } from '../oci/resolve.js';
import { Annotation, MediaType } from '../oci/media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '../oci/types.js';

/** Blocks per carrier manifest in the index packaging that images written before used (docs/spec.md 5.3). */
export const BLOCKS_PER_CARRIER = 4096;

export const EMPTY_CONFIG: Descriptor = {
  mediaType: MediaType.ociEmpty,
  digest: sha256('{}'),
  size: 2,
};

/** Sorted, de-duplicated block descriptors (by digest). */
export function uniqueBlocks(blocks: Descriptor[]): Descriptor[] {
  const byDigest = new Map<Digest, Descriptor>();
  for (const b of blocks) if (!byDigest.has(b.digest)) byDigest.set(b.digest, b);
  return [...byDigest.values()].sort((a, b) => (a.digest < b.digest ? -1 : 1));
}

/** mediaType, digest and size only: the transport manifest repeats no annotations (it stays small). */
function bare(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** One block-form manifest's parts: the config it keeps, its layers and blocks, and the source blobs to carry. */
export interface BlockFormParts {
  config: Descriptor;
  configJson: ImageConfig;
  layers: Descriptor[];
  blocks: Descriptor[];
  annotations?: Record<string, string>;
  /** Transport-manifest layers of the kept source manifest and index (already written). */
  sources?: Descriptor[];
}

/**
 * The transport manifest of a block-form manifest (docs/spec.md 5.1): an OCI artifact manifest whose
 * config is the block-form manifest and whose layers are every blob the image needs, each once.
 * Registries' GC and copiers see one manifest whose references are all plain blobs: they keep and
 * copy them byte for byte, and runtimes refuse it for its config type before storing anything.
 */
export function transportManifest(manifestDesc: Descriptor, manifest: ImageManifest, sources: Descriptor[] = []): ImageManifest {
  const seen = new Set<Digest>();
  const layers: Descriptor[] = [];
  for (const d of [manifest.config, ...manifest.layers, ...(manifest.blocks ?? [])]) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    layers.push(bare(d));
  }
  // the standard image's own manifest and index bytes (docs/spec.md 17.1): the only annotated layers
  for (const d of sources) if (!seen.has(d.digest)) layers.push(d);
  return {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: MediaType.blockImage,
    config: { mediaType: MediaType.blockManifest, digest: manifestDesc.digest, size: manifestDesc.size },
    layers,
    annotations: { [Annotation.formatVersion]: '1' },
  };
}

/**
 * Writes a block-form image the way docs/spec.md packages it: the block-form manifest (as a blob)
 * and the transport manifest the tag names. Returns the transport manifest's descriptor (`top`,
 * ready for `commit`) and the block-form manifest's.
 */
export async function writeBlockFormImage(
  dst: ImageWriter,
  parts: BlockFormParts,
): Promise<{ top: Descriptor; manifest: Descriptor }> {
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: parts.config,
    layers: parts.layers,
    blocks: parts.blocks,
    annotations: { [Annotation.formatVersion]: '1', ...parts.annotations },
  };
  const platform = platformOf(parts.configJson);
  const manifestDesc = await putJson(dst, MediaType.ociManifest, manifest, platform ? { platform } : {});
  // the platform on the tag's descriptor too: a layout's index.json then says what the image runs on
  const top = await putJson(dst, MediaType.ociManifest, transportManifest(manifestDesc, manifest, parts.sources), { artifactType: MediaType.blockImage, ...(platform ? { platform } : {}) });
  return { top, manifest: manifestDesc };
}

/**
 * Writes a multi-platform block-form image (docs/spec.md 5.4): one transport manifest per
 * platform, and the OCI index the tag names, listing them with their platforms. Returns the
 * index's descriptor (`top`) and each platform's block-form manifest.
 */
export async function writeBlockFormIndex(
  dst: ImageWriter,
  images: BlockFormParts[],
  annotations: Record<string, string> = {},
): Promise<{ top: Descriptor; manifests: Descriptor[]; tops: Descriptor[] }> {
  const written = [];
  for (const parts of images) written.push(await writeBlockFormImage(dst, parts));
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    artifactType: MediaType.blockImage,
    manifests: written.map((w) => w.top),
    annotations: { [Annotation.formatVersion]: '1', ...annotations },
  };
  const top = await putJson(dst, MediaType.ociIndex, index, { artifactType: MediaType.blockImage });
  return { top, manifests: written.map((w) => w.manifest), tops: written.map((w) => w.top) };
}
