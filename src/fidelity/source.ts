import { Readable } from 'node:stream';
import type { Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import { parseJson } from '../oci/json.js';
import { Annotation, MediaType } from '../oci/media-types.js';
import { checkDescriptor, imageEntries } from '../oci/resolve.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';

/** Largest source manifest or index kept: registries refuse manifests over 4 MiB anyway. */
const MAX_SOURCE = 4 << 20;

/** One standard blob kept byte for byte: its descriptor (its own media type) and bytes. */
export interface SourceBlob {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** What a block-form image keeps of the standard image it was made from (docs/spec.md 17.1). */
export interface SourceImage {
  manifest: SourceBlob;
  /** Parsed `manifest`: its layers are the blobs to write back. */
  parsed: ImageManifest;
  /** The standard index, when the block-form image kept it (every platform it lists was kept). */
  index?: SourceBlob;
}

function bare(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** The source blob of one standard image's manifest, as it was read. */
export function sourceManifest(src: ImageReader): SourceBlob {
  return { descriptor: bare(src.manifestDescriptor), bytes: src.manifestBytes };
}

/**
 * The index `src` was opened through, when the images `kept` (their manifest digests) are every
 * image it lists: written back, it then names only what is there.
 */
export function wholeIndex(src: ImageReader, kept: Digest[]): SourceBlob | undefined {
  const idx = src.index;
  if (!idx || src.manifest.blocks) return undefined;
  const listed = imageEntries(idx.index).map((m) => m.digest);
  if (idx.index.manifests.length !== listed.length || listed.length !== kept.length || !listed.every((d) => kept.includes(d))) return undefined;
  return { descriptor: bare(idx.descriptor), bytes: idx.bytes };
}

/**
 * Writes source blobs (a standard manifest, and its index when kept) into `dst`, and returns the
 * transport-manifest layers that carry them: opaque blobs registries and copiers keep as they are.
 */
export async function putSources(dst: ImageWriter, blobs: (SourceBlob | undefined)[]): Promise<Descriptor[]> {
  const out: Descriptor[] = [];
  for (const s of blobs) {
    if (!s) continue;
    await dst.putBlob(Readable.from([s.bytes]), { digest: s.descriptor.digest, size: s.bytes.length });
    out.push({ mediaType: MediaType.sourceBlob, digest: s.descriptor.digest, size: s.bytes.length, annotations: { [Annotation.sourceMediaType]: s.descriptor.mediaType } });
  }
  return out;
}

/**
 * The vendor digests a block-form image stands for: the standard manifest it was made from, and
 * the standard index when the tag names a multi-platform block-form index that kept it whole.
 * Empty for a block-form image that kept no source; for a standard image, its own digests.
 */
export function sourceDigests(src: ImageReader): { manifest?: Digest; index?: Digest } {
  if (!src.manifest.blocks) return { manifest: src.manifestDescriptor.digest, ...(src.index && { index: src.index.descriptor.digest }) };
  const manifest = src.manifest.annotations?.[Annotation.sourceManifest] as Digest | undefined;
  const index = (src.index ? src.index.index.annotations?.[Annotation.sourceIndex] : src.manifest.annotations?.[Annotation.sourceIndex]) as Digest | undefined;
  return { ...(manifest && { manifest }), ...(index && { index }) };
}

async function readKept(src: ImageReader, d: Descriptor, where: string): Promise<SourceBlob | undefined> {
  const mediaType = d.annotations?.[Annotation.sourceMediaType];
  if (!mediaType) throw new BlockportError('ECORRUPT', `${where}: source blob ${d.digest} has no ${Annotation.sourceMediaType}`);
  if (d.size > MAX_SOURCE) throw new BlockportError('ECORRUPT', `${where}: source blob ${d.digest}: ${d.size} bytes is too large`);
  return { descriptor: { mediaType, digest: d.digest, size: d.size }, bytes: await src.readBlob({ ...d, mediaType: MediaType.sourceBlob }) };
}

/**
 * The source kept in the block-form image `src` (its transport manifest's source blobs), checked
 * against the block-form manifest (same config, one layer per layer); undefined when it kept none
 * (blockified with --no-original, or before blockport kept sources).
 */
export async function readSource(src: ImageReader): Promise<SourceImage | undefined> {
  const want = src.manifest.annotations?.[Annotation.sourceManifest];
  const layers = src.transport?.manifest.layers;
  if (!want || !layers) return undefined;
  const where = `${src.ref}: transport manifest ${src.transport!.descriptor.digest}`;
  const sources = layers.map((l, i) => checkDescriptor(l, `${where}: layers[${i}]`)).filter((l) => l.mediaType === MediaType.sourceBlob);
  const find = (digest: string | undefined) => sources.find((s) => s.digest === digest);
  const m = find(want);
  if (!m) throw new BlockportError('ECORRUPT', `${where}: does not carry the source manifest ${want}`);
  const manifest = (await readKept(src, m, where))!;
  const parsed = parseJson<ImageManifest>(manifest.bytes, `${where}: source manifest`);
  if (!Array.isArray(parsed.layers) || parsed.layers.length !== src.manifest.layers.length || parsed.config?.digest !== src.manifest.config.digest) {
    throw new BlockportError('ECORRUPT', `${where}: the source manifest ${want} does not match the block-form manifest (config or layer count)`);
  }
  parsed.layers.forEach((l, i) => checkDescriptor(l, `${where}: source layers[${i}]`));
  // a multi-platform image names the kept index on its block-form index; a single one, on its manifest
  const idx = find(sourceDigests(src).index);
  return { manifest, parsed, index: idx ? await readKept(src, idx, where) : undefined };
}
