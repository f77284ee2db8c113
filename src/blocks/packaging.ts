import { sha256, type Digest } from '../digest/digest.js';
import type { ImageWriter } from '../oci/image.js';
import { putJson } from '../oci/json.js';
import { platformOf } from '../oci/resolve.js';
import { Annotation, MediaType } from '../oci/media-types.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/types.js';

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

/**
 * The transport manifest of a block-form manifest (docs/spec.md 5.1): an OCI artifact manifest whose
 * config is the block-form manifest and whose layers are every blob the image needs, each once.
 * Registries' GC and copiers see one manifest whose references are all plain blobs: they keep and
 * copy them byte for byte, and runtimes refuse it for its config type before storing anything.
 */
export function transportManifest(manifestDesc: Descriptor, manifest: ImageManifest): ImageManifest {
  const seen = new Set<Digest>();
  const layers: Descriptor[] = [];
  for (const d of [manifest.config, ...manifest.layers, ...(manifest.blocks ?? [])]) {
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    layers.push(bare(d));
  }
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
  parts: { config: Descriptor; configJson: ImageConfig; layers: Descriptor[]; blocks: Descriptor[]; annotations?: Record<string, string> },
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
  const top = await putJson(dst, MediaType.ociManifest, transportManifest(manifestDesc, manifest), { artifactType: MediaType.blockImage });
  return { top, manifest: manifestDesc };
}
