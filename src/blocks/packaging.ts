import { Readable } from 'node:stream';
import { sha256, type Digest } from '../digest/digest.js';
import type { ImageWriter } from '../oci/image.js';
import { putJson } from '../oci/json.js';
import { platformOf } from '../oci/resolve.js';
import { Annotation, MediaType } from '../oci/media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '../oci/types.js';


/** Blocks per carrier manifest: keeps each manifest far below registries' 4 MiB limit. */
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

/**
 * Writes a block-form image the way docs/spec.md packages it: the block-form manifest, carrier
 * manifests that list the blocks as layers (so registry GC and copiers keep them), and the index
 * the tag names. Returns the index descriptor, ready for `commit`.
 */
export async function writeBlockFormImage(
  dst: ImageWriter,
  parts: { config: Descriptor; configJson: ImageConfig; layers: Descriptor[]; blocks: Descriptor[]; annotations?: Record<string, string> },
): Promise<{ index: Descriptor; manifest: Descriptor }> {
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
  const subject: Descriptor = { mediaType: manifestDesc.mediaType, digest: manifestDesc.digest, size: manifestDesc.size };
  const carriers: Descriptor[] = [];
  if (parts.blocks.length) await dst.putBlob(Readable.from([Buffer.from('{}')]), { digest: EMPTY_CONFIG.digest, size: 2 });
  for (let i = 0; i < parts.blocks.length; i += BLOCKS_PER_CARRIER) {
    const carrier: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      artifactType: MediaType.blockCarrier,
      config: EMPTY_CONFIG,
      layers: parts.blocks.slice(i, i + BLOCKS_PER_CARRIER),
      subject,
      annotations: { [Annotation.formatVersion]: '1' },
    };
    carriers.push(await putJson(dst, MediaType.ociManifest, carrier, { artifactType: MediaType.blockCarrier }));
  }
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    artifactType: MediaType.blockImage,
    manifests: [manifestDesc, ...carriers],
    annotations: { [Annotation.formatVersion]: '1' },
  };
  const indexDesc = await putJson(dst, MediaType.ociIndex, index, { artifactType: MediaType.blockImage });
  return { index: indexDesc, manifest: manifestDesc };
}
