import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { writePartsAtomic, type FilePart } from '../cas/parts.js';
import { Hasher, digestHex, parseDigest, sha256, type Digest } from '../digest/digest.js';
import { checkSize, hasherFor } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { cleanPath } from '../tar/path.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';
import type { ImageReader } from './image.js';
import { jsonBytes, parseJson } from './json.js';
import { MediaType, ociLayerType } from './media-types.js';
import { ArchiveImageReader, layoutBlobPath, readArchiveIndex, readBlobMember } from './oci-archive.js';
import { checkNameTag } from './reference.js';
import { checkDescriptor, resolveImage, type ResolvedImage } from './resolve.js';
import { sniffCompression } from './compression.js';
import { indexTarFile, openMember, readMember, readMemberHead, requireFile, type TarIndex } from './tar-index.js';
import type { LazyLayer } from './standard-image.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from './types.js';
import { CHUNK } from '../chunk.js';

/** One image in a docker-archive's manifest.json, member paths already checked and cleaned. */
interface DockerEntry {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/** A member path named by manifest.json; anything absolute or climbing out of the archive is EUNSAFE. */
function memberPath(p: unknown, where: string): string {
  if (typeof p !== 'string' || p === '') throw new BlockportError('ECORRUPT', `${where}: invalid path ${JSON.stringify(p)}`);
  if (p.startsWith('/')) throw new BlockportError('EUNSAFE', `${where}: absolute path ${JSON.stringify(p)}`, { subject: p });
  return cleanPath(p, where);
}

async function readDockerManifest(index: TarIndex): Promise<DockerEntry[]> {
  const where = `${index.file}: manifest.json`;
  if (!index.members.has('manifest.json')) {
    throw new BlockportError('ENOTFOUND', `${index.file}: not a docker-archive (no manifest.json)`, { subject: index.file });
  }
  const raw = parseJson<unknown>(await readMember(index.file, requireFile(index, 'manifest.json')), where);
  if (!Array.isArray(raw)) throw new BlockportError('ECORRUPT', `${where}: not a JSON array`);
  return raw.map((e: Partial<Record<keyof DockerEntry, unknown>>, i) => {
    const at = `${where}: [${i}]`;
    if (!e || typeof e !== 'object' || !Array.isArray(e.Layers)) throw new BlockportError('ECORRUPT', `${at}: no Layers array`);
    const tags = e.RepoTags ?? [];
    if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) throw new BlockportError('ECORRUPT', `${at}: invalid RepoTags`);
    return { Config: memberPath(e.Config, `${at}.Config`), RepoTags: tags, Layers: e.Layers.map((l, j) => memberPath(l, `${at}.Layers[${j}]`)) };
  });
}

/** "app:1", "library/app:1" and "docker.io/library/app:1" all name the same image. */
function normalizeName(n: string): string {
  const first = n.split('/')[0];
  const hasHost = n.includes('/') && (/[.:]/.test(first) || first === 'localhost');
  const full = hasHost ? n : `docker.io/${n}`;
  return /^docker\.io\/[^/]+$/.test(full) ? `docker.io/library/${full.slice(10)}` : full;
}

function selectEntry(entries: DockerEntry[], name: string | undefined, file: string): DockerEntry {
  if (name === undefined) {
    if (entries.length === 1) return entries[0];
    const tags = entries.flatMap((e) => e.RepoTags);
    throw new BlockportError('EUSAGE', `${file}: holds ${entries.length} images; name one with :NAME:TAG (${tags.join(', ') || 'none is tagged'})`);
  }
  const want = normalizeName(name);
  const found = entries.find((e) => e.RepoTags.some((t) => normalizeName(t) === want));
  if (!found) throw new BlockportError('ENOTFOUND', `${file}: no image named ${name}`, { subject: name });
  return found;
}

const BLOB_PATH = /^blobs\/sha256\/([a-f0-9]{64})$/;

/**
 * Docker 25+ archives also hold an OCI layout: when one of its manifests has this entry's config,
 * that manifest is the image, byte for byte, and no layer needs hashing.
 */
async function findOciManifest(index: TarIndex, entry: DockerEntry, ref: string): Promise<ResolvedImage | undefined> {
  const cfg = BLOB_PATH.exec(entry.Config);
  if (!cfg || !index.members.has('index.json')) return undefined;
  const queue: Descriptor[] = [...(await readArchiveIndex(index)).manifests];
  const read = (d: Descriptor) => readBlobMember(index, layoutBlobPath(d), d);
  for (let seen = 0; queue.length > 0 && seen < 256; seen++) {
    const d = queue.shift()!;
    if (!index.members.has(layoutBlobPath(d))) continue; // a platform the archive does not carry
    if (d.mediaType === MediaType.ociIndex || d.mediaType === MediaType.dockerManifestList) {
      const idx = parseJson<ImageIndex>(await read(d), `${index.file}: index ${d.digest}`);
      if (Array.isArray(idx.manifests)) queue.push(...idx.manifests.map((m, i) => checkDescriptor(m, `${index.file}: index ${d.digest} manifests[${i}]`)));
    } else if (d.mediaType === MediaType.ociManifest || d.mediaType === MediaType.dockerManifest) {
      const m = parseJson<ImageManifest>(await read(d), `${index.file}: manifest ${d.digest}`);
      if (m.config?.digest === `sha256:${cfg[1]}`) return resolveImage(d, read, ref);
    }
  }
  return undefined;
}

/** A descriptor for a layer member: an uncompressed one is its diff_id; a compressed one is hashed once. */
async function describeLayer(index: TarIndex, path: string, diffId: Digest): Promise<Descriptor> {
  const m = requireFile(index, path);
  const compression = sniffCompression(await readMemberHead(index.file, m, 4));
  if (compression === 'none') return { mediaType: MediaType.ociLayer, digest: diffId, size: m.size };
  const named = BLOB_PATH.exec(path); // content-addressed already; openBlob verifies it
  let digest = named ? (`sha256:${named[1]}` as Digest) : undefined;
  if (!digest) {
    const h = new Hasher();
    for await (const chunk of openMember(index.file, m)) h.update(chunk);
    if (h.size !== m.size) throw new BlockportError('ECORRUPT', `${index.file}: ${path} changed while being read`, { subject: path });
    digest = h.digest();
  }
  return { mediaType: ociLayerType(compression), digest, size: m.size };
}

/** Builds the OCI manifest a legacy `docker save` archive implies; returns it and where each blob lives. */
async function synthesize(index: TarIndex, entry: DockerEntry, ref: string): Promise<[ResolvedImage, Map<string, string>]> {
  const configBytes = await readMember(index.file, requireFile(index, entry.Config));
  const config = parseJson<ImageConfig>(configBytes, `${index.file}: ${entry.Config}`);
  const diffIds: unknown = config?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== entry.Layers.length) {
    throw new BlockportError('ECORRUPT', `${ref}: config lists ${Array.isArray(diffIds) ? diffIds.length : 0} diff_ids for ${entry.Layers.length} layers`);
  }
  const places = new Map<string, string>();
  const configDesc: Descriptor = { mediaType: MediaType.ociConfig, digest: sha256(configBytes), size: configBytes.length };
  places.set(configDesc.digest, entry.Config);
  const layers: Descriptor[] = [];
  for (const [i, path] of entry.Layers.entries()) {
    const layer = await describeLayer(index, path, parseDigest(diffIds[i], `${ref}: diff_ids[${i}]`));
    places.set(layer.digest, path);
    layers.push(layer);
  }
  const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDesc, layers };
  const manifestBytes = jsonBytes(manifest);
  const manifestDescriptor: Descriptor = { mediaType: MediaType.ociManifest, digest: sha256(manifestBytes), size: manifestBytes.length };
  return [{ manifest, manifestBytes, manifestDescriptor, config, configBytes, top: manifestDescriptor, topBytes: manifestBytes }, places];
}

/**
 * Opens one image of a docker-archive (`docker save`, `podman save`, skopeo) in place. `name`
 * ("app:1") picks it by RepoTags; without it the archive must hold one image. Every blob stream is
 * verified, so a layer that does not match its diff_id fails with EDIGEST at its end.
 */
export async function openDockerArchive(file: string, name: string | undefined, ref: string): Promise<ImageReader> {
  const index = await indexTarFile(file);
  const entry = selectEntry(await readDockerManifest(index), name, file);
  const oci = await findOciManifest(index, entry, ref);
  if (oci) return new ArchiveImageReader(ref, index, oci, layoutBlobPath);
  const [resolved, places] = await synthesize(index, entry, ref);
  return new ArchiveImageReader(ref, index, resolved, (d) => {
    const p = places.get(d.digest);
    if (!p) throw new BlockportError('ENOTFOUND', `${ref}: no blob ${d.digest} in the archive`, { subject: d.digest });
    return p;
  });
}

/** What `writeDockerArchive` needs: the config, names, and re-openable uncompressed layers. */
export interface DockerArchiveImage {
  configBytes: Buffer;
  repoTags: string[];
  /**
   * In config order (see LazyLayer): a file output runs `plan` (when given) on a copy thread
   * instead of reading `open`: the same bytes. Each layer's bytes are checked against its diff_id
   * unless it is `verified`: then only its size is.
   */
  layers: readonly ArchiveLayer[];
}

/** A layer as the archive writer takes it: a LazyLayer fits. */
export interface ArchiveLayer extends Pick<LazyLayer, 'diffId' | 'plan'> {
  size: number;
  verified?: boolean;
  open(): AsyncIterable<Buffer> | Promise<AsyncIterable<Buffer>>;
}

/** Refuses, before a byte is written, an image whose layers disagree with its config. */
function checkImage(image: DockerArchiveImage): void {
  const config = parseJson<ImageConfig>(image.configBytes, 'image config');
  const diffIds: unknown[] = Array.isArray(config?.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
  const mismatch = diffIds.length !== image.layers.length || image.layers.some((l, i) => l.diffId !== diffIds[i]);
  if (mismatch) throw new BlockportError('ECORRUPT', `image config diff_ids do not match the ${image.layers.length} layers given`);
  image.layers.forEach((l, i) => checkSize(l.size, `layer ${i + 1}`));
  image.repoTags.forEach((t) => checkNameTag(t, 'docker-archive'));
}

function fileHeader(path: string, size: number): Buffer {
  return encodeHeader({ path, type: 'file', size, mode: 0o644, uid: 0, gid: 0, mtime: 0 });
}

function* smallFile(path: string, data: Buffer): Generator<Buffer> {
  yield fileHeader(path, data.length);
  yield data;
  yield padding(data.length);
}

/** Fails (EDIGEST) unless a layer's bytes had the digest its diff_id promises. */
function checkLayerDigest(layer: DockerArchiveImage['layers'][number], got: Digest): void {
  if (got !== layer.diffId) throw new BlockportError('EDIGEST', `layer ${layer.diffId}: digest mismatch (got ${got})`, { subject: layer.diffId });
}

/** A layer's bytes, failing (EDIGEST) unless exactly `size` bytes with digest `diffId` (unless verified) arrive. */
async function* layerData(layer: DockerArchiveImage['layers'][number]): AsyncGenerator<Buffer> {
  const src = await layer.open();
  const h = layer.verified ? undefined : hasherFor(layer.size);
  let size = 0;
  try {
    for await (const chunk of src) {
      await h?.update(chunk);
      size += chunk.length;
      if (size > layer.size) throw new BlockportError('EDIGEST', `layer ${layer.diffId}: more than the promised ${layer.size} bytes`, { subject: layer.diffId });
      yield chunk;
    }
  } finally {
    if (src instanceof Readable) src.destroy();
    else await (src as AsyncGenerator<Buffer>).return?.(undefined);
  }
  if (size !== layer.size) throw new BlockportError('EDIGEST', `layer ${layer.diffId}: ${size} bytes, ${layer.size} promised`, { subject: layer.diffId });
  if (h) checkLayerDigest(layer, await h.digest());
}

/** The legacy `repositories` file: repository -> tag -> top layer id. */
function repositories(image: DockerArchiveImage): Buffer | undefined {
  const top = image.layers.at(-1);
  if (!top || image.repoTags.length === 0) return undefined;
  const repos: Record<string, Record<string, string>> = {};
  for (const t of image.repoTags) {
    const i = t.lastIndexOf(':');
    (repos[t.slice(0, i)] ??= {})[t.slice(i + 1)] = digestHex(top.diffId);
  }
  return jsonBytes(repos);
}

/**
 * The pieces of a docker-archive of `image`, in the layout `docker load` reads: manifest.json
 * first (so the stream can be piped straight in), repositories, `<config hex>.json`, then each
 * layer once as `<diff_id hex>.tar` (header, data, padding). Layer data is a size and its
 * verified bytes; everything else is bytes at hand.
 */
type LayerPiece = { size: number; data: () => AsyncGenerator<Buffer>; layer: DockerArchiveImage['layers'][number] };

function archivePieces(image: DockerArchiveImage): (Buffer | LayerPiece)[] {
  checkImage(image);
  const configName = `${digestHex(sha256(image.configBytes))}.json`;
  const layerNames = image.layers.map((l) => `${digestHex(l.diffId)}.tar`);
  const out: (Buffer | LayerPiece)[] = [...smallFile('manifest.json', jsonBytes([{ Config: configName, RepoTags: image.repoTags, Layers: layerNames }]))];
  const repos = repositories(image);
  if (repos) out.push(...smallFile('repositories', repos));
  out.push(...smallFile(configName, image.configBytes));
  const written = new Set<string>();
  for (const [i, layer] of image.layers.entries()) {
    if (written.has(layerNames[i])) continue;
    written.add(layerNames[i]);
    out.push(fileHeader(layerNames[i], layer.size), { size: layer.size, data: () => layerData(layer), layer }, padding(layer.size));
  }
  out.push(END_OF_ARCHIVE);
  return out;
}

/** A docker-archive of `image` as a stream (see archivePieces). */
export function dockerArchiveStream(image: DockerArchiveImage): Readable {
  const pieces = archivePieces(image);
  async function* generate(): AsyncGenerator<Buffer> {
    for (const p of pieces) {
      if (Buffer.isBuffer(p)) yield p;
      else yield* p.data();
    }
  }
  return Readable.from(generate(), { objectMode: false, highWaterMark: CHUNK });
}

/** Streams a docker-archive of `image` into `out` and ends it; a bad layer fails it part-way. */
export async function writeDockerArchive(out: NodeJS.WritableStream, image: DockerArchiveImage): Promise<void> {
  await pipeline(dockerArchiveStream(image), out);
}

/** Layers spliced at once into a docker-archive file (see writePartsAtomic). */
const LAYERS_AT_ONCE = 2;

/**
 * Writes a docker-archive file atomically: temp file beside it, fsync, rename; nothing left on
 * error. The same bytes as dockerArchiveStream, but every member's offset is known from the
 * sizes, so two layers are produced at once, each written at its place.
 */
export async function writeDockerArchiveFile(file: string, image: DockerArchiveImage): Promise<void> {
  let offset = 0;
  const parts: FilePart[] = archivePieces(image).map((p) => {
    const { plan } = Buffer.isBuffer(p) ? {} : p.layer;
    const part: FilePart = Buffer.isBuffer(p)
      ? { offset, bytes: p }
      : plan
        ? { offset, size: p.size, plan: () => plan.call(p.layer), check: p.layer.verified ? undefined : (got: Digest) => checkLayerDigest(p.layer, got) }
        : { offset, size: p.size, stream: p.data };
    offset += Buffer.isBuffer(p) ? p.length : p.size;
    return part;
  });
  await writePartsAtomic(file, parts, LAYERS_AT_ONCE);
}
