import type { Piece } from '../cas/copy-plan.js';
import type { Digest } from '../digest/digest.js';
import { NO_RECORDS, type ImageReader, type ImageWriter } from '../oci/image.js';
import { annotatedSize, compressionOf, isBlockLayer } from '../oci/media-types.js';
import { writeImage, type ImageRef } from '../oci/transport.js';
import { writeDockerArchive } from '../oci/docker-archive.js';
import { writeImageTo, type LazyLayer, type StandardImage, type WriteImageOptions, type WrittenImage, type WrittenLayer } from '../oci/standard-image.js';
import type { Descriptor } from '../oci/types.js';
import { BlockAccess } from './block-access.js';
import { keptPlan } from './splice-plan.js';
import { explainMismatch, planSpot, standardLayer } from './standard-layer.js';
import { originalImage } from '../fidelity/original.js';

export interface MaterializeOptions extends WriteImageOptions {
  onProgress?: (p: { layer: number; layers: number; bytes: number }) => void;
  /** Hash every layer even when the source records it as verified (see ImageReader.records). */
  verify?: boolean;
}

export type MaterializedLayer = WrittenLayer;
export type MaterializeResult = WrittenImage;

/** A standard image being produced from a source; `close` releases the blocks it reads. */
export interface OpenStandardImage extends StandardImage {
  /** Records the block-form layers a write hashed and matched (best effort; see ImageReader.records). */
  record(written: WrittenLayer[]): Promise<void>;
  close(): Promise<void>;
}

/** The uncompressed size of a layer without reading it, when that can be known. */
function knownSize(desc: Descriptor): number | undefined {
  return annotatedSize(desc) ?? (!isBlockLayer(desc.mediaType) && compressionOf(desc.mediaType) === 'none' ? desc.size : undefined);
}

/**
 * Counts bytes for the progress bar as they pass: chunks, or copy-plan pieces as they are planned
 * (a few MiB ahead of the disk). No stream hop: materialize is per-chunk-cost bound.
 */
async function* counted<T extends Piece>(source: AsyncIterable<T>, onBytes: (n: number) => void): AsyncGenerator<T> {
  for await (const p of source) {
    onBytes(Buffer.isBuffer(p) ? p.length : p.size);
    yield p;
  }
}

/**
 * The standard image `src` stands for, its layers produced on demand: layers never in block form
 * come from their blobs (decompressed when read as bytes), block-form layers are spliced from
 * blocks, streamed or (when the bytes lie in files) as copy plans. A layer the source records as
 * verified is marked so (writers may skip hashing it) unless `verify` is set.
 */
export async function standardImage(src: ImageReader, opts: MaterializeOptions = {}): Promise<OpenStandardImage> {
  const access = await BlockAccess.for(src);
  const diffIds = src.config.rootfs.diff_ids;
  let bytes = 0;
  let current = 0; // the layer whose bytes were asked for last, for the error message
  const tick = (i: number) => (n: number) => {
    bytes += n;
    opts.onProgress?.({ layer: i, layers: diffIds.length, bytes });
  };
  const layers: LazyLayer[] = [];
  for (const [i, desc] of src.manifest.layers.entries()) {
    const spliced = isBlockLayer(desc.mediaType);
    const spot = await planSpot(src, desc);
    const size = knownSize(desc);
    const verified = await isVerified(src, desc, diffIds[i], opts);
    layers.push({
      diffId: diffIds[i],
      size,
      spliced,
      verified,
      blob: spliced ? undefined : desc,
      async measure() {
        if (size !== undefined) return size;
        let n = 0;
        for await (const c of standardLayer(src, desc, access)) n += c.length;
        return n;
      },
      open() {
        opts.signal?.throwIfAborted();
        current = i;
        return counted(standardLayer(src, desc, access), tick(i));
      },
      plan: spot
        ? () => {
            current = i;
            return counted(keptPlan(src.records, desc, spot, access, verified), tick(i));
          }
        : undefined,
    });
  }
  return {
    ref: src.ref,
    config: src.config,
    configBytes: src.configBytes,
    configDescriptor: src.manifest.config,
    layers,
    source: src,
    // read only when asked for: a few small reads, but reads all the same
    ...(opts.original && { original: await originalImage(src) }),
    explain: (err, i) => explainMismatch(err, src, access, i ?? current),
    async record(written) {
      // a store that cannot be written (read-only, full) only means the next materialize hashes again
      for (const l of written) if (l.spliced && l.hashed) await src.records.record(src.manifest.layers[l.index].digest, l.diffId).catch(() => {});
    },
    async close() {
      await src.records.dropPending();
      await access.close();
    },
  };
}

/**
 * Whether layer `desc` may be copied without hashing: the source records it as splicing into
 * `diffId`, or it is a plain uncompressed blob of a place that keeps records (its digest is the
 * diff_id, verified when it was stored).
 */
async function isVerified(src: ImageReader, desc: Descriptor, diffId: Digest, opts: MaterializeOptions): Promise<boolean> {
  if (opts.verify) return false;
  if (src.records === NO_RECORDS) return false;
  if (!isBlockLayer(desc.mediaType)) return compressionOf(desc.mediaType) === 'none' && desc.digest === diffId;
  return src.records.has(desc.digest, diffId);
}

/** Runs `write` on the standard image of `src`, then records what it verified. */
async function produce(src: ImageReader, opts: MaterializeOptions, write: (img: OpenStandardImage) => Promise<WrittenImage>): Promise<MaterializeResult> {
  const img = await standardImage(src, opts);
  try {
    const result = await write(img);
    await img.record(result.layers);
    return result;
  } finally {
    await img.close();
  }
}

/**
 * Materializes `src` into any writable reference: a docker-archive (uncompressed layers,
 * manifest.json first), an OCI layout or archive, the store, a registry. Every layer is checked
 * against its diff_id unless the source records it as verified and the output is a docker-archive.
 */
export function materialize(src: ImageReader, dst: string | ImageRef, opts: MaterializeOptions = {}): Promise<MaterializeResult> {
  return produce(src, opts, (img) => writeImage(dst, img, opts));
}

/** Materializes into an opened writer (oci:, oci-archive:, the store, a registry). */
export function materializeToWriter(src: ImageReader, dst: ImageWriter, opts: MaterializeOptions = {}): Promise<MaterializeResult> {
  return produce(src, opts, (img) => writeImageTo(dst, img, opts));
}

/** Materializes into a docker-archive stream (`docker load`'s input) and ends it. */
export function materializeToStream(src: ImageReader, out: NodeJS.WritableStream, repoTags: string[], opts: MaterializeOptions = {}): Promise<MaterializeResult> {
  return produce(src, opts, async (img) => {
    const layers = [];
    for (const l of img.layers) layers.push({ diffId: l.diffId, verified: l.verified, open: () => l.open(), size: l.size ?? (await l.measure()) });
    try {
      await writeDockerArchive(out, { configBytes: img.configBytes, repoTags, layers });
    } catch (err) {
      await img.explain(err);
    }
    return { configDigest: img.configDescriptor.digest, layers: layers.map((l, index) => ({ index, diffId: l.diffId, size: l.size, spliced: img.layers[index].spliced, hashed: !l.verified })) };
  });
}
