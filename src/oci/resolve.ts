import { parseDigest } from '../digest/digest.js';
import { checkSize } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { parseJson } from './json.js';
import { MediaType } from './media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from './types.js';

/**
 * The part every ImageReader shares: the resolved manifest and config, held once. Places differ
 * only in how they open a blob.
 */
export abstract class ResolvedImageReader {
  readonly manifest: ImageManifest;
  readonly manifestBytes: Buffer;
  readonly manifestDescriptor: Descriptor;
  readonly config: ImageConfig;
  readonly configBytes: Buffer;
  /** What the reference is tagged to: a transport manifest, an index, or the manifest itself. */
  readonly top: Descriptor;

  constructor(
    readonly ref: string,
    readonly resolved: ResolvedImage,
  ) {
    this.manifest = resolved.manifest;
    this.manifestBytes = resolved.manifestBytes;
    this.manifestDescriptor = resolved.manifestDescriptor;
    this.config = resolved.config;
    this.configBytes = resolved.configBytes;
    this.top = resolved.top;
  }

  async close(): Promise<void> {}
}

export interface ResolvedImage {
  manifest: ImageManifest;
  manifestBytes: Buffer;
  manifestDescriptor: Descriptor;
  config: ImageConfig;
  configBytes: Buffer;
  /** The index the tag named, when it named one (block-form images written before 5.1 are tagged as an index). */
  index?: { descriptor: Descriptor; index: ImageIndex; bytes: Buffer };
  /** What the tag names (transport manifest, index or manifest) and its bytes. */
  top: Descriptor;
  topBytes: Buffer;
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

function hostPlatform(): { os: string; architecture: string } {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
  return { os: 'linux', architecture: arch };
}

/** Picks the image manifest from an index: the block-form one, else the host's platform, else the only one. */
function pick(index: ImageIndex, where: string): Descriptor {
  const images = index.manifests.filter((m) => m.mediaType === MediaType.ociManifest || m.mediaType === MediaType.dockerManifest);
  const blockForm = images.filter((m) => m.artifactType !== MediaType.blockCarrier);
  if (index.artifactType === MediaType.blockImage && blockForm.length >= 1) return blockForm[0];
  if (blockForm.length === 1) return blockForm[0];
  const host = hostPlatform();
  const match = blockForm.find((m) => m.platform?.os === host.os && m.platform?.architecture === host.architecture);
  if (match) return match;
  throw new BlockportError('EUNSUPPORTED', `${where}: index holds ${blockForm.length} images and none for ${host.os}/${host.architecture}`);
}

/**
 * Follows a tag's descriptor to one image: reads (and verifies, through `read`) the index if it is
 * one, the manifest and the config.
 */
export async function resolveImage(top: Descriptor, read: (d: Descriptor) => Promise<Buffer>, where: string): Promise<ResolvedImage> {
  let desc = top;
  let index: ResolvedImage['index'];
  let bytes = await read(desc);
  const topBytes = bytes;
  for (let depth = 0; desc.mediaType === MediaType.ociIndex || desc.mediaType === MediaType.dockerManifestList; depth++) {
    if (depth > 2) throw new BlockportError('EUNSUPPORTED', `${where}: indexes nested too deep`);
    const idx = parseJson<ImageIndex>(bytes, `${where}: index ${desc.digest}`);
    if (!Array.isArray(idx.manifests)) throw new BlockportError('ECORRUPT', `${where}: index ${desc.digest} has no manifests`);
    idx.manifests.forEach((m, i) => checkDescriptor(m, `${where}: index manifests[${i}]`));
    index ??= { descriptor: desc, index: idx, bytes };
    desc = pick(idx, where);
    bytes = await read(desc);
  }
  if (desc.mediaType !== MediaType.ociManifest && desc.mediaType !== MediaType.dockerManifest) {
    throw new BlockportError('EUNSUPPORTED', `${where}: ${desc.mediaType} is not an image manifest`);
  }
  let manifest = parseJson<ImageManifest>(bytes, `${where}: manifest ${desc.digest}`);
  if (manifest?.config?.mediaType === MediaType.blockManifest) {
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
  return { manifest, manifestBytes: bytes, manifestDescriptor: desc, config, configBytes, index, top: { mediaType: top.mediaType, digest: top.digest, size: top.size, ...(top.artifactType ? { artifactType: top.artifactType } : {}) }, topBytes };
}
