import { BlockAccess } from '../blocks/block-access.js';
import type { Digest } from '../digest/digest.js';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { jsonBytes, parseJson } from '../oci/json.js';
import { LayoutImageReader, type OciLayout } from '../oci/layout.js';
import { Annotation, MediaType, compressionOf, isBlockLayer, ociLayerType } from '../oci/media-types.js';
import { checkDescriptor, resolveImage } from '../oci/resolve.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/types.js';

/** A blob a client may fetch: a store blob as it is, or a standard layer spliced from a block-form one. */
export type BlobSource =
  | { kind: 'store'; digest: Digest; size: number }
  | SplicedLayer;

/** A standard layer served uncompressed: its digest is the diff_id, its size the layer-size annotation. */
export interface SplicedLayer {
  kind: 'spliced';
  digest: Digest;
  size: number;
  /** The block-form image the layer belongs to (for its blocks). */
  image: LayoutImageReader;
  /** The block-form layer's descriptor in that image. */
  layer: Descriptor;
}

/** Manifest or index bytes as served, with their media type and digest. */
export interface ServedManifest {
  mediaType: string;
  digest: Digest;
  bytes: Buffer;
}

/** What one store tag looks like to registry clients. */
export interface ServedImage {
  /** True when the store holds it in block form and clients get the standard image. */
  blockForm: boolean;
  /** What the tag resolves to. */
  top: ServedManifest;
  /** Every manifest clients may fetch by digest: `top`, and an index's image manifests. */
  manifests: Map<Digest, ServedManifest>;
  blobs: Map<Digest, BlobSource>;
}

function served(mediaType: string, bytes: Buffer): ServedManifest {
  return { mediaType, digest: sha256(bytes), bytes };
}

/** The uncompressed size of a block-form layer, which the spec makes REQUIRED on its descriptor. */
function layerSize(desc: Descriptor, where: string): number {
  const v = desc.annotations?.[Annotation.layerSize];
  if (v === undefined || !/^(0|[1-9]\d*)$/.test(v)) {
    throw new BlockportError('ECORRUPT', `${where}: block-form layer ${desc.digest} has no ${Annotation.layerSize} annotation`, { subject: desc.digest });
  }
  return Number(v);
}

/**
 * The standard manifest of a block-form image, byte for byte the one `blockport materialize IMAGE
 * oci:DIR` writes (spliced layers uncompressed, kept layers unchanged): a function of the
 * block-form manifest and config only, so its digest is the same on every start of the server,
 * and a layer that did not change between two versions keeps its digest (clients skip it).
 */
export function standardManifest(image: LayoutImageReader): { manifest: ServedManifest; blobs: Map<Digest, BlobSource> } {
  const diffIds = image.config.rootfs.diff_ids;
  const blobs = new Map<Digest, BlobSource>();
  const layers = image.manifest.layers.map((desc, i): Descriptor => {
    if (!isBlockLayer(desc.mediaType)) {
      blobs.set(desc.digest, { kind: 'store', digest: desc.digest, size: desc.size });
      const mediaType = desc.mediaType.startsWith('application/vnd.docker') ? ociLayerType(compressionOf(desc.mediaType)) : desc.mediaType;
      return { mediaType, digest: desc.digest, size: desc.size, annotations: desc.annotations };
    }
    const size = layerSize(desc, image.ref);
    if (!blobs.has(diffIds[i])) blobs.set(diffIds[i], { kind: 'spliced', digest: diffIds[i], size, image, layer: desc });
    return { mediaType: MediaType.ociLayer, digest: diffIds[i], size, annotations: { [Annotation.layerSize]: String(size) } };
  });
  const config = image.manifest.config;
  blobs.set(config.digest, { kind: 'store', digest: config.digest, size: config.size });
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.size },
    layers,
  };
  return { manifest: served(MediaType.ociManifest, jsonBytes(manifest)), blobs };
}

/** Whether the tag's top blob is a block-form image (docs/spec.md sections 4 and 5). */
function isBlockForm(top: Descriptor, parsed: ImageManifest & ImageIndex): boolean {
  if (top.mediaType === MediaType.ociIndex) return parsed.artifactType === MediaType.blockImage;
  return Array.isArray(parsed.blocks) || parsed.annotations?.[Annotation.formatVersion] !== undefined;
}

function isManifestType(t: string): boolean {
  return t === MediaType.ociManifest || t === MediaType.dockerManifest;
}

function isIndexType(t: string): boolean {
  return t === MediaType.ociIndex || t === MediaType.dockerManifestList;
}

/** The blobs an image manifest names (config and layers), all served from the store as they are. */
function addManifestBlobs(m: ImageManifest, where: string, blobs: Map<Digest, BlobSource>): void {
  if (m.schemaVersion !== 2 || !Array.isArray(m.layers)) throw new BlockportError('ECORRUPT', `${where}: not a schema 2 image manifest`);
  for (const d of [m.config, ...m.layers]) {
    checkDescriptor(d, where);
    blobs.set(d.digest, { kind: 'store', digest: d.digest, size: d.size });
  }
}

/**
 * How the store tag `tag` (whose index entry is `top`) is served: a block-form image as its
 * standard image, a standard manifest or index as it is (with the image manifests an index lists).
 */
export async function servedImage(layout: OciLayout, tag: string, top: Descriptor): Promise<ServedImage> {
  const bytes = await layout.readBlob(top);
  const parsed = parseJson<ImageManifest & ImageIndex>(bytes, `${tag}: ${top.digest}`);
  if (isBlockForm(top, parsed)) {
    // resolved from `top` itself, not the tag again: the tag may have moved since index.json was read
    const image = new LayoutImageReader(tag, layout, await resolveImage(top, (d) => layout.readBlob(d), tag));
    // every block present (EMISSING names the absent ones), so a pull fails before any layer moves
    await (await BlockAccess.for(image)).close();
    const { manifest, blobs } = standardManifest(image);
    return { blockForm: true, top: manifest, manifests: new Map([[manifest.digest, manifest]]), blobs };
  }
  const topServed: ServedManifest = { mediaType: top.mediaType, digest: top.digest, bytes };
  const manifests = new Map([[top.digest, topServed]]);
  const blobs = new Map<Digest, BlobSource>();
  if (isManifestType(top.mediaType)) {
    addManifestBlobs(parsed, `${tag}: manifest ${top.digest}`, blobs);
  } else if (isIndexType(top.mediaType) && Array.isArray(parsed.manifests)) {
    for (const [i, child] of parsed.manifests.entries()) {
      checkDescriptor(child, `${tag}: manifests[${i}]`);
      if (!isManifestType(child.mediaType)) continue; // nested indexes are not served
      const childBytes = await layout.readBlob(child).catch(() => undefined);
      if (!childBytes) continue; // a platform the store does not hold
      manifests.set(child.digest, { mediaType: child.mediaType, digest: child.digest, bytes: childBytes });
      addManifestBlobs(parseJson<ImageManifest>(childBytes, `${tag}: ${child.digest}`), `${tag}: manifest ${child.digest}`, blobs);
    }
  } else {
    throw new BlockportError('EUNSUPPORTED', `${tag}: ${top.mediaType} is not an image manifest or index`);
  }
  return { blockForm: false, top: topServed, manifests, blobs };
}
