import { pipeline, Readable } from 'node:stream';
import { CopyThreads, type Piece } from '../cas/copy-plan.js';
import type { Digest } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { CHUNK } from '../chunk.js';
import { compressor } from './compression.js';
import type { ImageReader, ImageWriter } from './image.js';
import { putJson } from './json.js';
import { Annotation, MediaType, compressionOf, ociLayerType, type Compression } from './media-types.js';
import { platformOf } from './resolve.js';
import type { Descriptor, ImageConfig, ImageManifest } from './types.js';

/**
 * One layer of a standard image, not yet read: its diff_id and uncompressed size are known, its
 * bytes come when asked for, as a stream or (when the bytes lie in files) as a copy plan.
 */
export interface LazyLayer {
  readonly diffId: Digest;
  /**
   * The uncompressed tar's size; undefined when it is not known without reading the layer (a
   * compressed layer never in block form, without blockport's size annotation): see `measure`.
   */
  readonly size?: number;
  /** The uncompressed size, reading the layer once if it must. */
  measure(): Promise<number>;
  /** True when the bytes are spliced from blocks; false when the layer was never in block form. */
  readonly spliced: boolean;
  /**
   * True when these bytes were hashed against the diff_id before, from blobs that cannot have
   * changed since (see the store's verified layers): a writer may then skip hashing them.
   */
  readonly verified: boolean;
  /** The blob that is this layer, compressed or not, when it can be copied as it is (never in block form). */
  readonly blob?: Descriptor;
  /** The uncompressed bytes. */
  open(): AsyncIterable<Buffer>;
  /** The same bytes as a copy plan, when they lie in files. */
  plan?(): AsyncIterable<Piece>;
}

/**
 * A standard image whose layers are produced on demand: what materialize returns and every
 * output (docker-archive, oci:, oci-archive:, the store, a registry, a server) writes.
 */
export interface StandardImage {
  readonly ref: string;
  readonly config: ImageConfig;
  readonly configBytes: Buffer;
  readonly configDescriptor: Descriptor;
  readonly layers: readonly LazyLayer[];
  /** Where blobs that travel as they are (layers never in block form, the config) are copied from. */
  readonly source: ImageReader;
  /** The source's own manifest, index and layer blobs, when they can be written back (docs/spec.md 17). */
  readonly original?: OriginalImage;
  /**
   * Turns a failure while writing layer `index` (default: the last layer whose bytes were asked
   * for) into the error that names its cause (a corrupt block or layer blob), or rethrows it.
   */
  explain(err: unknown, index?: number): Promise<never>;
}

/**
 * A standard image as its vendor wrote it: the manifest and index bytes, and per layer how its
 * exact blob is had. Built by the fidelity module; written by writeImageTo.
 */
export interface OriginalImage {
  manifest: { descriptor: Descriptor; bytes: Buffer };
  index?: { descriptor: Descriptor; bytes: Buffer };
  layers: OriginalLayerBlob[];
}

export interface OriginalLayerBlob {
  /** The source's descriptor of the layer: the blob to write. */
  target: Descriptor;
  /** `copy`: the layer's `blob` is it; `tar`: the uncompressed bytes are it; `recreate`: see below; `none`: it cannot be had. */
  how: 'copy' | 'tar' | 'recreate' | 'none';
  /**
   * The target's bytes from the layer's (verified) tar. They are checked against the target as
   * they stream: a difference fails with EDIGEST whose subject is the target's digest.
   */
  recreate?(tar: Readable, size: number): Readable;
  /** Why it cannot be had (`none`). */
  reason?: string;
}

export interface WriteImageOptions {
  /**
   * Layer compression for outputs that store blobs. Unset: spliced layers are stored
   * uncompressed and the others keep their blobs. Set: every layer ends up in that compression.
   */
  compression?: Compression;
  /** Names the image gets inside a docker-archive. */
  repoTags?: string[];
  /**
   * Write the source's own blobs, manifest and index where `img.original` allows. `prefer`: a
   * layer that cannot be had is written as `compression` says, under a new manifest; `require`:
   * such an image is refused before anything is written.
   */
  original?: 'prefer' | 'require';
  signal?: AbortSignal;
}

export interface WrittenLayer {
  index: number;
  diffId: Digest;
  size: number;
  spliced: boolean;
  /** False when its bytes were not hashed again (verified before, or copied as a stored blob). */
  hashed: boolean;
  /** True when the blob written is the source's own (with `original`). */
  original?: boolean;
  /** Why the source's blob was not written, when `original` was asked for. */
  fallback?: string;
}

export interface WrittenImage {
  /** The manifest written (outputs that store blobs); absent for docker-archive. */
  manifest?: Descriptor;
  configDigest: Digest;
  layers: WrittenLayer[];
  /** With `original`: whether the manifest (and index) written are the source's own bytes. */
  original?: { manifest: boolean; index: boolean };
}

/** Fails (EDIGEST) unless bytes that were written had the digest and size their diff_id promises. */
export function checkLayer(layer: LazyLayer, index: number, got: { digest: Digest; size: number }): void {
  if (got.digest !== layer.diffId || got.size !== layer.size) {
    throw new BlockportError('EDIGEST', `layer ${index + 1} (${layer.diffId}): digest mismatch (got ${got.digest}, ${got.size} bytes)`, { subject: layer.diffId });
  }
}

/** The descriptor a standard manifest gives a layer kept as its stored blob (see `LazyLayer.blob`). */
export function keptLayerDescriptor(layer: LazyLayer): Descriptor {
  const b = layer.blob!;
  const mediaType = b.mediaType.startsWith('application/vnd.docker') ? ociLayerType(compressionOf(b.mediaType)) : b.mediaType;
  const annotations = layer.size === undefined ? b.annotations : { ...b.annotations, [Annotation.layerSize]: String(layer.size) };
  return { mediaType, digest: b.digest, size: b.size, ...(annotations ? { annotations } : {}) };
}

/** The descriptor of a layer stored uncompressed: its digest is the diff_id. */
export function uncompressedLayerDescriptor(layer: LazyLayer, size: number): Descriptor {
  return { mediaType: ociLayerType('none'), digest: layer.diffId, size, annotations: { [Annotation.layerSize]: String(size) } };
}

/**
 * The standard manifest of `img` with these layer descriptors: the config kept byte for byte.
 * A function of its inputs only, so the same image gives the same manifest digest anywhere
 * (`blockport serve` relies on it: docs/spec.md section 15).
 */
export function standardManifest(img: StandardImage, layers: Descriptor[]): ImageManifest {
  return {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: img.configDescriptor.digest, size: img.configDescriptor.size },
    layers,
  };
}

/**
 * Writes one layer's blob: copied as it is, from a plan on a copy thread, or streamed (and
 * compressed). `hashed` is true when its bytes were hashed against the diff_id here: false for a
 * kept blob and for an uncompressed one the destination held already (nothing was read).
 */
async function putLayer(dst: ImageWriter, img: StandardImage, layer: LazyLayer, index: number, compression: Compression | undefined, threads: () => CopyThreads): Promise<{ desc: Descriptor; hashed: boolean }> {
  const keep = layer.blob && (compression === undefined || compressionOf(layer.blob.mediaType) === compression);
  if (keep) {
    await dst.copyBlob(img.source, layer.blob!);
    return { desc: keptLayerDescriptor(layer), hashed: false };
  }
  const c = compression ?? 'none';
  const size = layer.size ?? (await layer.measure());
  const annotations = { [Annotation.layerSize]: String(size) };
  const expected = { digest: layer.diffId, size };
  if (c === 'none') {
    // uncompressed: the blob is the diff_id, so the writer verifies it on its way in. From a copy
    // plan where the bytes lie in files: a copy thread reads, hashes and writes through buffers
    // of its own, where a stream allocates a buffer per chunk, and on Node 24 dead ones pile up
    // (java v2 to oci: on Node 24, plan against stream: 90 MB against 131 MB peak RSS, half the
    // CPU, 1.13x the wall time; a 1 GB image streamed peaked at 150 MB).
    const stored = layer.plan ? await dst.putPlan(layer.plan(), threads(), expected) : await dst.putBlob(Readable.from(layer.open(), { objectMode: false, highWaterMark: CHUNK }), expected);
    return { desc: uncompressedLayerDescriptor(layer, size), hashed: stored.created !== false };
  }
  // compressed: the blob's digest is new, so the diff_id is checked on the way into the compressor
  const body = Readable.from(layer.open(), { objectMode: false, highWaterMark: CHUNK });
  const check = new VerifyingStream(layer.diffId, size, `layer ${index + 1} (${layer.diffId})`);
  const z = compressor(c, 'layer')!;
  let failure: unknown;
  const fail = (e: unknown) => (failure ??= e);
  body.on('error', (e) => check.destroy(e)).on('error', fail);
  check.on('error', (e) => z.destroy(e)).on('error', fail);
  z.on('error', fail);
  try {
    const stored = await dst.putBlob(body.pipe(check).pipe(z));
    if (failure) throw failure;
    return { desc: { mediaType: ociLayerType(c), digest: stored.digest, size: stored.size, annotations }, hashed: true };
  } catch (err) {
    // the chain starts flowing before putBlob listens: the first error is the one that explains
    throw failure ?? err;
  }
}

/**
 * Writes a standard image blob by blob into `dst` and tags it (oci:, oci-archive:, the store, a
 * registry): layers never in block form keep their blobs (unless another compression is asked
 * for), spliced layers go through a copy thread when their bytes lie in files, every written
 * layer is checked against its diff_id before it is named, the config is kept byte for byte.
 */
export async function writeImageTo(dst: ImageWriter, img: StandardImage, opts: WriteImageOptions = {}): Promise<WrittenImage> {
  let threads: CopyThreads | undefined;
  try {
    const out: Descriptor[] = [];
    const layers: WrittenLayer[] = [];
    const original = opts.original ? img.original : undefined;
    if (opts.original === 'require') refuseUnoriginal(img);
    const getThreads = () => (threads ??= CopyThreads.start(1));
    for (const [i, layer] of img.layers.entries()) {
      opts.signal?.throwIfAborted();
      const o = original?.layers[i];
      const fallback = o && o.how !== 'none' ? await putOriginal(dst, img, layer, i, o, opts, getThreads) : o?.reason;
      if (o && fallback === undefined) {
        out.push(o.target);
        layers.push({ index: i, diffId: layer.diffId, size: layer.size ?? (await layer.measure()), spliced: layer.spliced, hashed: o.how !== 'copy', original: true });
        continue;
      }
      let put: { desc: Descriptor; hashed: boolean } | undefined;
      try {
        put = await putLayer(dst, img, layer, i, opts.compression, getThreads);
      } catch (err) {
        await img.explain(err, i);
      }
      out.push(put!.desc);
      layers.push({ index: i, diffId: layer.diffId, size: layer.size ?? Number(put!.desc.annotations?.[Annotation.layerSize] ?? put!.desc.size), spliced: layer.spliced, hashed: put!.hashed, ...(fallback && { fallback }) });
    }
    await dst.copyBlob(img.source, img.configDescriptor);
    if (original && layers.every((l) => l.original)) return await commitOriginal(dst, img, original, layers);
    // an OCI manifest names OCI layer types: a Docker one kept from the source is renamed
    const manifest = standardManifest(img, out.map((d) => (d.mediaType.startsWith('application/vnd.docker') ? { ...d, mediaType: ociLayerType(compressionOf(d.mediaType)) } : d)));
    const platform = platformOf(img.config);
    const desc = await putJson(dst, MediaType.ociManifest, manifest, platform ? { platform } : {});
    await dst.commit(desc);
    return { manifest: desc, configDigest: img.configDescriptor.digest, layers, ...(opts.original && { original: { manifest: false, index: false } }) };
  } catch (err) {
    await dst.abort();
    throw err;
  } finally {
    await threads?.close();
  }
}

/** With `original: 'require'`: refuses, before anything is written, an image whose source blobs cannot all be had. */
export function refuseUnoriginal(img: Pick<StandardImage, 'ref' | 'original'>): void {
  if (!img.original) throw new BlockportError('EUNSUPPORTED', `${img.ref} kept no source manifest (blockified with --no-original, or by an older blockport): its original manifest cannot be written`);
  const bad = img.original.layers.findIndex((l) => l.how === 'none');
  if (bad >= 0) {
    const l = img.original.layers[bad];
    throw new BlockportError('EUNSUPPORTED', `${img.ref}: layer ${bad + 1} (${l.target.digest}) cannot be re-created: ${l.reason}`, { subject: l.target.digest });
  }
}

/**
 * Writes layer i as the source's blob: copied, as its tar (an uncompressed source layer), or
 * re-created from the tar, which is first checked against the diff_id; the blob is checked
 * against the target's digest before it takes that name. Returns undefined when written, or
 * (with `prefer`) why a re-created blob differed: the caller then falls back.
 */
async function putOriginal(dst: ImageWriter, img: StandardImage, layer: LazyLayer, i: number, o: OriginalLayerBlob, opts: WriteImageOptions, threads: () => CopyThreads): Promise<string | undefined> {
  try {
    if (o.how === 'copy') return void (await dst.copyBlob(img.source, layer.blob!));
    if (await dst.hasBlob(o.target)) return undefined;
    if (o.how === 'tar') return void (await putLayer(dst, img, layer, i, 'none', threads));
    const size = layer.size ?? (await layer.measure());
    const body = Readable.from(layer.open(), { objectMode: false, highWaterMark: CHUNK });
    const tar = pipeline(body, new VerifyingStream(layer.diffId, size, `layer ${i + 1} (${layer.diffId})`), () => {});
    await dst.putBlob(o.recreate!(tar, size), { digest: o.target.digest, size: o.target.size });
    return undefined;
  } catch (err) {
    // the recipe wrote other bytes, or its tool (gzip, zstd) is absent here: the layer's fault, not the blocks'
    const why = recipeFailure(err, o.target.digest);
    if (why && opts.original !== 'require') return why.message;
    if (why) throw why;
    return img.explain(err, i);
  }
}

/** The recipe's own failure in `err` or its causes: a digest mismatch of the re-created blob, or an absent tool. */
function recipeFailure(err: unknown, target: Digest): BlockportError | undefined {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof BlockportError && ((e.code === 'EDIGEST' && e.subject === target) || e.code === 'ETOOL')) return e;
  }
  return undefined;
}

/** Writes the source's manifest (and index) bytes and tags the top, once every layer is the source's own. */
async function commitOriginal(dst: ImageWriter, img: StandardImage, original: OriginalImage, layers: WrittenLayer[]): Promise<WrittenImage> {
  const { manifest, index } = original;
  for (const s of [manifest, index]) if (s) await dst.putBlob(Readable.from([s.bytes]), { digest: s.descriptor.digest, size: s.bytes.length });
  const platform = platformOf(img.config);
  await dst.commit(index ? index.descriptor : { ...manifest.descriptor, ...(platform && { platform }) });
  return { manifest: manifest.descriptor, configDigest: img.configDescriptor.digest, layers, original: { manifest: true, index: index !== undefined } };
}
