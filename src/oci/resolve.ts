import { Readable } from 'node:stream';
import { parseDigest, type Digest } from '../digest/digest.js';
import { checkSize } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { NO_RECORDS, type FileSpot, type ImageReader, type LayerRecords } from './image.js';
import { parseJson, readSmall } from './json.js';
import { MediaType, isImageManifest, isIndex } from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from './types.js';

/**
 * The part every ImageReader shares: the resolved index, manifest and config, held once, and
 * small blobs served from them. Places differ only in how they open and locate a blob.
 */
export abstract class ResolvedImageReader implements ImageReader {
  readonly top: Descriptor;
  readonly index?: ResolvedImage['index'];
  readonly manifest: ImageManifest;
  readonly manifestBytes: Buffer;
  readonly manifestDescriptor: Descriptor;
  readonly config: ImageConfig;
  readonly configBytes: Buffer;
  readonly transport?: ResolvedImage['transport'];
  private readonly known: Map<Digest, Buffer>;

  constructor(
    readonly ref: string,
    resolved: ResolvedImage,
    readonly records: LayerRecords = NO_RECORDS,
  ) {
    this.index = resolved.index;
    this.top = bareDescriptor(resolved.top ?? resolved.index?.descriptor ?? resolved.manifestDescriptor);
    this.manifest = resolved.manifest;
    this.manifestBytes = resolved.manifestBytes;
    this.manifestDescriptor = resolved.manifestDescriptor;
    this.config = resolved.config;
    this.configBytes = resolved.configBytes;
    this.transport = resolved.transport;
    this.known = new Map([
      [resolved.manifestDescriptor.digest, resolved.manifestBytes],
      [resolved.manifest.config.digest, resolved.configBytes],
      ...(resolved.index ? [[resolved.index.descriptor.digest, resolved.index.bytes] as [Digest, Buffer]] : []),
      ...(resolved.top && resolved.topBytes ? [[resolved.top.digest, resolved.topBytes] as [Digest, Buffer]] : []),
      ...(resolved.transport ? [[resolved.transport.descriptor.digest, resolved.transport.bytes] as [Digest, Buffer]] : []),
    ]);
  }

  /** A verified stream of a blob where this place keeps it. */
  protected abstract openStored(desc: Descriptor): Promise<Readable>;
  abstract locate(desc: Descriptor): Promise<FileSpot | undefined>;

  /**
   * The index, manifest and config come from memory: they were verified while resolving, and a
   * docker-archive's manifest exists nowhere else (it is derived from manifest.json).
   */
  openBlob(desc: Descriptor): Promise<Readable> {
    const bytes = this.known.get(desc.digest);
    if (bytes && bytes.length === desc.size) return Promise.resolve(Readable.from([bytes]));
    return this.openStored(desc);
  }

  /** Bytes already read and verified while resolving; else a verified read, capped in size. */
  async readBlob(desc: Descriptor): Promise<Buffer> {
    const bytes = this.known.get(desc.digest);
    if (bytes && bytes.length === desc.size) return bytes;
    return readSmall(await this.openStored(desc), `blob ${desc.digest}`);
  }

  async close(): Promise<void> {}
}

/** A descriptor without annotations: what an image is, not what a place calls it. */
export function bareDescriptor(d: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.artifactType) out.artifactType = d.artifactType;
  if (d.platform) out.platform = d.platform;
  return out;
}

export interface ResolvedImage {
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDescriptor: Descriptor;
  config: ImageConfig;
  configBytes: Buffer;
  /** The index the tag named, when it named one (block-form images written before 5.1 are tagged as an index). */
  index?: { descriptor: Descriptor; index: ImageIndex; bytes: Buffer };
  /** What the tag names (transport manifest, index or manifest) and its bytes, when resolveImage found it. */
  top?: Descriptor;
  topBytes?: Buffer;
  /** The transport manifest the block-form manifest came through (docs/spec.md 5.1), when it did. */
  transport?: { descriptor: Descriptor; manifest: ImageManifest; bytes: Buffer };
}

/** Checks the fields of a descriptor that blockport relies on. */
export function checkDescriptor(d: unknown, where: string): Descriptor {
  const x = d as Descriptor;
  if (!x || typeof x !== 'object' || typeof x.mediaType !== 'string') {
    throw new BlockportError('ECORRUPT', `${where}: invalid descriptor`);
  }
  parseDigest(x.digest, where);
  checkSize(x.size, where);
  return x;
}

/** The platform an image config declares, for index and layout descriptors. */
export function platformOf(config: ImageConfig): Descriptor['platform'] {
  if (!config.os || !config.architecture) return undefined;
  return { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
}

/** The platform this process runs on, as OCI names it (Node's `x64` is `amd64`). */
export function hostPlatform(): Platform {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
  return { os: 'linux', architecture: arch };
}

/** Parses `OS/ARCH[/VARIANT]` (a --platform value). */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/i.test(p))) {
    throw new BlockportError('EUSAGE', `bad platform ${JSON.stringify(s)} (OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64)`);
  }
  return { os: parts[0], architecture: parts[1], ...(parts[2] ? { variant: parts[2] } : {}) };
}

/** `os/arch[/variant]`, or `unknown` for an entry without a platform. */
export function formatPlatform(p: Platform | undefined): string {
  return p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : 'unknown';
}

/** Whether `p` is `want`; a `want` without variant takes any variant (arm64 is usually v8). */
export function matchesPlatform(p: Platform | undefined, want: Platform): boolean {
  if (!p || p.os !== want.os || p.architecture !== want.architecture) return false;
  return !want.variant || !p.variant || p.variant === want.variant;
}

/**
 * The images an index lists, one per platform: standard manifests, the transport manifests of a
 * multi-platform block-form index (docs/spec.md 5.4), or the one block-form manifest of the index
 * form (5.3). Not carriers, nor attestation manifests (platform unknown/unknown), nor indexes.
 */
export function imageEntries(index: ImageIndex): Descriptor[] {
  return index.manifests.filter(
    (m) => isImageManifest(m) && (m.artifactType === MediaType.blockImage || !m.artifactType?.startsWith('application/vnd.blockport.')) && m.platform?.os !== 'unknown',
  );
}

/**
 * Picks one image manifest from an index: the one for `want` when given, else the only one,
 * else the host's platform. Ambiguity is refused with the platforms the index holds.
 */
export function pickImage(index: ImageIndex, where: string, want?: Platform | 'any'): Descriptor {
  const images = imageEntries(index);
  const list = () => images.map((m) => formatPlatform(m.platform)).join(', ');
  if (want && want !== 'any') {
    const match = images.find((m) => matchesPlatform(m.platform, want));
    if (match) return match;
    throw new BlockportError('ENOTFOUND', `${where}: no image for ${formatPlatform(want)} (it holds ${list() || 'none'})`);
  }
  if (images.length === 1) return images[0];
  const host = hostPlatform();
  const match = images.find((m) => matchesPlatform(m.platform, host));
  if (match) return match;
  if (want === 'any' && images.length > 0) return images[0];
  throw new BlockportError('EUNSUPPORTED', `${where}: the index holds ${images.length} images (${list()}) and none for ${formatPlatform(host)}; choose one with --platform`);
}

/**
 * Follows a tag's descriptor to one image: reads (and verifies, through `read`) the index if it is
 * one, the manifest and the config.
 */
export async function resolveImage(top: Descriptor, read: (d: Descriptor) => Promise<Buffer>, where: string, want?: Platform | 'any'): Promise<ResolvedImage> {
  let desc = top;
  let index: ResolvedImage['index'];
  let bytes = await read(desc);
  const topBytes = bytes;
  for (let depth = 0; isIndex(desc); depth++) {
    if (depth > 2) throw new BlockportError('EUNSUPPORTED', `${where}: indexes nested too deep`);
    const idx = parseJson<ImageIndex>(bytes, `${where}: index ${desc.digest}`);
    if (!Array.isArray(idx.manifests)) throw new BlockportError('ECORRUPT', `${where}: index ${desc.digest} has no manifests`);
    idx.manifests.forEach((m, i) => checkDescriptor(m, `${where}: index manifests[${i}]`));
    index ??= { descriptor: desc, index: idx, bytes };
    desc = pickImage(idx, where, want);
    bytes = await read(desc);
  }
  if (!isImageManifest(desc)) {
    throw new BlockportError('EUNSUPPORTED', `${where}: ${desc.mediaType} is not an image manifest`);
  }
  let manifest = parseJson<ImageManifest>(bytes, `${where}: manifest ${desc.digest}`);
  let transport: ResolvedImage['transport'];
  if (manifest?.config?.mediaType === MediaType.blockManifest) {
    transport = { descriptor: bareDescriptor(desc), manifest, bytes };
    // a transport manifest (docs/spec.md 5.1): the block-form manifest is its config
    const carried = checkDescriptor(manifest.config, `${where}: transport manifest config`);
    const listed = new Set((Array.isArray(manifest.layers) ? manifest.layers : []).map((l, i) => checkDescriptor(l, `${where}: transport layers[${i}]`).digest));
    desc = { mediaType: MediaType.ociManifest, digest: carried.digest, size: carried.size };
    bytes = await read({ ...desc, mediaType: MediaType.blockManifest });
    manifest = parseJson<ImageManifest>(bytes, `${where}: manifest ${desc.digest}`);
    const unlisted = [manifest.config, ...(manifest.layers ?? []), ...(manifest.blocks ?? [])].filter((d) => !listed.has(d?.digest));
    if (unlisted.length) throw new BlockportError('ECORRUPT', `${where}: transport manifest ${top.digest} does not list ${unlisted.length} blob(s) of its image, e.g. ${unlisted[0]?.digest}`);
  }
  if (manifest.schemaVersion !== 2 || !Array.isArray(manifest.layers)) {
    throw new BlockportError('ECORRUPT', `${where}: manifest ${desc.digest} is not a schema 2 image manifest`);
  }
  checkDescriptor(manifest.config, `${where}: config`);
  manifest.layers.forEach((l, i) => checkDescriptor(l, `${where}: layers[${i}]`));
  (manifest.blocks ?? []).forEach((b, i) => checkDescriptor(b, `${where}: blocks[${i}]`));
  const configBytes = await read(manifest.config);
  const config = parseJson<ImageConfig>(configBytes, `${where}: config ${manifest.config.digest}`);
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== manifest.layers.length) {
    throw new BlockportError('ECORRUPT', `${where}: config lists ${diffIds?.length ?? 0} diff_ids for ${manifest.layers.length} layers`);
  }
  diffIds.forEach((d, i) => parseDigest(d, `${where}: diff_ids[${i}]`));
  return { manifest, manifestBytes: bytes, manifestDescriptor: desc, config, configBytes, index, top: bareDescriptor(top), topBytes, transport };
}
