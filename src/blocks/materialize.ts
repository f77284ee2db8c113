import { Readable, Transform, type Writable } from 'node:stream';
import type { Digest } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { compressor, openUncompressed } from '../oci/compression.js';
import { writeDockerArchive, writeDockerArchiveFile, type DockerArchiveImage } from '../oci/docker-archive.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import { Annotation, MediaType, compressionOf, isBlockLayer, ociLayerType, type Compression } from '../oci/media-types.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import { BlockAccess } from './block-access.js';
import { putJson, platformOf } from './packaging.js';
import { canPlan, explainMismatch, layerPlan, standardLayer } from './standard-layer.js';
import type { VerifiedLayers } from '../store/verified.js';
import type { Piece } from '../cas/copy-plan.js';
import { CHUNK } from '../chunk.js';

export interface MaterializeOptions {
  /**
   * Layer compression in oci:/store outputs. Unset: spliced layers are stored uncompressed and the
   * others keep their blobs (nothing is recompressed). Set: every layer ends up in that compression.
   */
  compression?: Compression;
  onProgress?: (p: { layer: number; layers: number; bytes: number }) => void;
  signal?: AbortSignal;
  /**
   * The store's record of verified layers, when the source is the store: to a docker-archive, a
   * recorded block-form layer (and a plain uncompressed layer, whose blob is its diff_id) is
   * copied without hashing; every output records the block-form layers it hashed. Unset: every
   * layer is hashed and nothing recorded.
   */
  verified?: VerifiedLayers;
  /** Hash every layer even when it is recorded as verified. */
  verify?: boolean;
}

export interface MaterializedLayer {
  index: number;
  diffId: Digest;
  size: number;
  /** True when the layer was spliced from blocks; false when copied or only decompressed. */
  spliced: boolean;
  /** False when its bytes were not hashed again: verified before (see MaterializeOptions.verified). */
  hashed: boolean;
}

export interface MaterializeResult {
  /** The manifest written (oci:/store outputs) — absent for docker-archive. */
  manifest?: Descriptor;
  configDigest: Digest;
  layers: MaterializedLayer[];
}

/** The uncompressed size of layer i: blockport's annotation, else measured by reading it once. */
async function layerSize(src: ImageReader, desc: Descriptor, access: BlockAccess): Promise<number> {
  const known = desc.annotations?.[Annotation.layerSize];
  if (known !== undefined && /^\d+$/.test(known)) return Number(known);
  if (!isBlockLayer(desc.mediaType) && compressionOf(desc.mediaType) === 'none') return desc.size;
  let n = 0;
  for await (const c of isBlockLayer(desc.mediaType) ? standardLayer(src, desc, access) : await openUncompressed(await src.openBlob(desc), desc.digest)) n += c.length;
  return n;
}

/**
 * Whether layer `desc` may be copied without hashing: the source is the store, and the layer is
 * recorded as splicing into `diffId`, or is a plain uncompressed blob (whose digest is the
 * diff_id, verified when it was stored).
 */
async function isVerified(desc: Descriptor, diffId: Digest, opts: MaterializeOptions): Promise<boolean> {
  if (!opts.verified || opts.verify) return false;
  if (!isBlockLayer(desc.mediaType)) return compressionOf(desc.mediaType) === 'none' && desc.digest === diffId;
  return opts.verified.has(desc.digest, diffId);
}

/**
 * Records the block-form layers just hashed and matched (see VerifiedLayers). Best effort: a store
 * that cannot be written (read-only, full) only means the next materialize hashes them again.
 */
async function recordVerified(src: ImageReader, layers: MaterializedLayer[], opts: MaterializeOptions): Promise<void> {
  if (!opts.verified) return;
  for (const l of layers) {
    if (l.spliced && l.hashed) await opts.verified.record(src.manifest.layers[l.index].digest, l.diffId).catch(() => {});
  }
}

/**
 * Counts bytes for the progress bar as they pass: chunks, or copy-plan pieces as they are planned
 * (a few MiB ahead of the disk). No stream hop: materialize is per-chunk-cost bound.
 */
async function* counted<T extends Piece>(source: AsyncIterable<T>, opts: MaterializeOptions, i: number, layers: number, counter: { bytes: number }): AsyncGenerator<T> {
  for await (const p of source) {
    counter.bytes += Buffer.isBuffer(p) ? p.length : p.size;
    opts.onProgress?.({ layer: i, layers, bytes: counter.bytes });
    yield p;
  }
}

/** Counts bytes for the progress bar (no hashing: the diff_id check hashes once). */
function progress(opts: MaterializeOptions, i: number, layers: number, counter: { bytes: number }): Transform {
  return new Transform({
    highWaterMark: CHUNK,
    transform(chunk: Buffer, _enc, cb) {
      counter.bytes += chunk.length;
      opts.onProgress?.({ layer: i, layers, bytes: counter.bytes });
      cb(null, chunk);
    },
  });
}

/** Materializes into a docker-archive (file or stream): uncompressed layers, manifest.json first. */
export async function materializeToDockerArchive(src: ImageReader, target: { file: string } | { stream: Writable }, repoTags: string[], opts: MaterializeOptions = {}): Promise<MaterializeResult> {
  const access = await BlockAccess.for(src);
  try {
    const diffIds = src.config.rootfs.diff_ids;
    const counter = { bytes: 0 };
    const layers: MaterializedLayer[] = [];
    const image: DockerArchiveImage = { configBytes: src.configBytes, repoTags, layers: [] };
    let current = 0; // the layer being written, for the error message
    for (const [i, desc] of src.manifest.layers.entries()) {
      const size = await layerSize(src, desc, access);
      const verified = await isVerified(desc, diffIds[i], opts);
      layers.push({ index: i, diffId: diffIds[i], size, spliced: isBlockLayer(desc.mediaType), hashed: !verified });
      image.layers.push({
        diffId: diffIds[i],
        size,
        verified,
        // the archive writer checks each layer's size and diff_id as it streams (one hash per byte)
        open: async () => {
          opts.signal?.throwIfAborted();
          current = i;
          return counted(standardLayer(src, desc, access), opts, i, diffIds.length, counter);
        },
        // a file output copies block-form layers range by range on copy threads
        plan: canPlan(src, desc)
          ? () => {
              current = i;
              return counted(layerPlan(src, desc, access), opts, i, diffIds.length, counter);
            }
          : undefined,
      });
    }
    try {
      if ('file' in target) await writeDockerArchiveFile(target.file, image);
      else await writeDockerArchive(target.stream, image);
    } catch (err) {
      await explainMismatch(err, src, access, current);
    }
    await recordVerified(src, layers, opts);
    return { configDigest: src.manifest.config.digest, layers };
  } finally {
    await access.close();
  }
}

/**
 * Materializes into an OCI place (oci:, oci-archive:, the store): layers that were never in block
 * form are linked or copied as they are (unless another compression is asked for); block-form
 * layers are spliced, verified against their diff_id while written, and stored uncompressed unless
 * a compression is asked for.
 */
export async function materializeToWriter(src: ImageReader, dst: ImageWriter, opts: MaterializeOptions = {}): Promise<MaterializeResult> {
  const access = await BlockAccess.for(src);
  const compression = opts.compression ?? 'none';
  try {
    const diffIds = src.config.rootfs.diff_ids;
    const counter = { bytes: 0 };
    const out: Descriptor[] = [];
    const layers: MaterializedLayer[] = [];
    for (const [i, desc] of src.manifest.layers.entries()) {
      opts.signal?.throwIfAborted();
      const keep = !isBlockLayer(desc.mediaType) && (opts.compression === undefined || compressionOf(desc.mediaType) === opts.compression);
      if (keep) {
        await dst.copyBlob(src, desc);
        out.push({ mediaType: desc.mediaType.startsWith('application/vnd.docker') ? ociLayerType(compressionOf(desc.mediaType)) : desc.mediaType, digest: desc.digest, size: desc.size, annotations: desc.annotations });
        layers.push({ index: i, diffId: diffIds[i], size: Number(desc.annotations?.[Annotation.layerSize] ?? desc.size), spliced: false, hashed: false });
        continue;
      }
      const size = await layerSize(src, desc, access);
      const z = compressor(compression, 'layer');
      const body = Readable.from(standardLayer(src, desc, access), { objectMode: false, highWaterMark: CHUNK });
      let stored;
      // the chain starts flowing before putBlob listens: keep its first error and report that one
      let failure: unknown;
      const fail = (e: unknown) => (failure ??= e);
      try {
        const counted = body.pipe(progress(opts, i, diffIds.length, counter));
        body.on('error', (e) => counted.destroy(e));
        counted.on('error', fail);
        if (z) {
          // compressed: the blob's digest is new, so check the diff_id on the way in
          const check = counted.pipe(new VerifyingStream(diffIds[i], size, `layer ${i} (${diffIds[i]})`));
          counted.on('error', (e) => check.destroy(e));
          check.on('error', (e) => z.destroy(e));
          check.on('error', fail);
          z.on('error', fail);
          stored = await dst.putBlob(check.pipe(z));
        } else {
          // uncompressed: the blob is the diff_id, and the store verifies it while writing
          stored = await dst.putBlob(counted, { digest: diffIds[i], size });
        }
        if (failure) throw failure;
      } catch (err) {
        await explainMismatch(failure ?? err, src, access, i);
      }
      out.push({ mediaType: ociLayerType(compression), digest: stored!.digest, size: stored!.size, annotations: { [Annotation.layerSize]: String(size) } });
      layers.push({ index: i, diffId: diffIds[i], size, spliced: isBlockLayer(desc.mediaType), hashed: true });
    }
    await recordVerified(src, layers, opts);
    await dst.copyBlob(src, src.manifest.config);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: src.manifest.config.digest, size: src.manifest.config.size },
      layers: out,
    };
    const platform = platformOf(src.config);
    const desc = await putJson(dst, MediaType.ociManifest, manifest, platform ? { platform } : {});
    await dst.commit(desc);
    return { manifest: desc, configDigest: src.manifest.config.digest, layers };
  } catch (err) {
    await dst.abort();
    throw err;
  } finally {
    await access.close();
  }
}

