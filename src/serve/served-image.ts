import { standardImage } from '../blocks/materialize.js';
import type { Digest } from '../digest/digest.js';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { jsonBytes, parseJson } from '../oci/json.js';
import { LayoutImageReader } from '../oci/layout.js';
import { reachable } from '../oci/graph.js';
import { Annotation, MediaType, isImageManifest, isIndex } from '../oci/media-types.js';
import { resolveImage } from '../oci/resolve.js';
import { keptLayerDescriptor, standardManifest, uncompressedLayerDescriptor, type LazyLayer } from '../oci/standard-image.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/types.js';
import type { Store } from '../store/store.js';

/** A blob a client may fetch: a store blob as it is, or a standard layer spliced from a block-form one. */
export type BlobSource =
  | { kind: 'store'; digest: Digest; size: number }
  | SplicedLayer;

/** A standard layer served uncompressed: its digest is the diff_id, its size known before any byte is read. */
export interface SplicedLayer {
  kind: 'spliced';
  digest: Digest;
  size: number;
  /** The layer of the lazy standard image: its bytes, spliced from blocks when asked for. */
  layer: LazyLayer;
  /** Notes in the store that the block-form layer was seen to splice into its diff_id (best effort). */
  record(): Promise<void>;
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

/**
 * The standard image of a block-form image as a registry serves it, with the manifest
 * materialize writes when it keeps stored layers as they are (docs/spec.md section 15): layers
 * that were in block form uncompressed (digest: the diff_id; size: the layer-size annotation, or
 * measured once), the others as stored. A function of the block-form manifest and config only,
 * so the digest is the same on every start of the server, and a layer that did not change between
 * two versions keeps its digest (clients skip it).
 */
async function servedStandardImage(image: LayoutImageReader): Promise<{ manifest: ServedManifest; blobs: Map<Digest, BlobSource> }> {
  // every block must be there (EMISSING names the absent ones), so a pull fails before any layer
  // moves. Kept open for the server's life: over the store, its blocks are the store's own files
  // (no temp copies to release), and only folder-block indexes are held in memory.
  const img = await standardImage(image);
  const blobs = new Map<Digest, BlobSource>();
  const layers: Descriptor[] = [];
  for (const [i, layer] of img.layers.entries()) {
    if (layer.blob) {
      blobs.set(layer.blob.digest, { kind: 'store', digest: layer.blob.digest, size: layer.blob.size });
      layers.push(keptLayerDescriptor(layer));
      continue;
    }
    const size = layer.size ?? (await layer.measure());
    const blockForm = image.manifest.layers[i].digest;
    const record = () => image.records.record(blockForm, layer.diffId).catch(() => {});
    if (!blobs.has(layer.diffId)) blobs.set(layer.diffId, { kind: 'spliced', digest: layer.diffId, size, layer, record });
    layers.push(uncompressedLayerDescriptor(layer, size));
  }
  blobs.set(img.configDescriptor.digest, { kind: 'store', digest: img.configDescriptor.digest, size: img.configDescriptor.size });
  return { manifest: served(MediaType.ociManifest, jsonBytes(standardManifest(img, layers))), blobs };
}

/** Whether the tag's top blob is a block-form image (docs/spec.md sections 4 and 5). */
function isBlockForm(top: Descriptor, parsed: ImageManifest & ImageIndex): boolean {
  if (top.mediaType === MediaType.ociIndex) return parsed.artifactType === MediaType.blockImage;
  return Array.isArray(parsed.blocks) || parsed.annotations?.[Annotation.formatVersion] !== undefined;
}

/**
 * How the store tag `tag` (whose index entry is `top`) is served: a block-form image as its
 * standard image, a standard manifest or index as it is (with everything it reaches).
 */
export async function servedImage(store: Store, tag: string, top: Descriptor): Promise<ServedImage> {
  const layout = store.layout;
  const bytes = await layout.readBlob(top);
  const parsed = parseJson<ImageManifest & ImageIndex>(bytes, `${tag}: ${top.digest}`);
  if (isBlockForm(top, parsed)) {
    // resolved from `top` itself, not the tag again: the tag may have moved since index.json was read
    const image = new LayoutImageReader(tag, layout, await resolveImage(top, (d) => layout.readBlob(d), tag), store.verified);
    const { manifest, blobs } = await servedStandardImage(image);
    return { blockForm: true, top: manifest, manifests: new Map([[manifest.digest, manifest]]), blobs };
  }
  if (!isIndex(top) && !isImageManifest(top)) throw new BlockportError('EUNSUPPORTED', `${tag}: ${top.mediaType} is not an image manifest or index`);
  const topServed: ServedManifest = { mediaType: top.mediaType, digest: top.digest, bytes };
  const manifests = new Map<Digest, ServedManifest>();
  const blobs = new Map<Digest, BlobSource>();
  // every manifest an index reaches is served by digest, every config and layer as a blob
  for (const d of await reachable(top, (x) => layout.readBlob(x), tag)) {
    if (isIndex(d) || isImageManifest(d)) manifests.set(d.digest, d.digest === top.digest ? topServed : { mediaType: d.mediaType, digest: d.digest, bytes: await layout.readBlob(d) });
    else blobs.set(d.digest, { kind: 'store', digest: d.digest, size: d.size });
  }
  return { blockForm: false, top: topServed, manifests, blobs };
}
