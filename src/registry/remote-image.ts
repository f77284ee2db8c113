import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/types.js';
import type { OpenOptions } from '../oci/image.js';
import { formatRef, parseRef } from '../oci/transport.js';
import { resolveImage, ResolvedImageReader, type ResolvedImage } from '../oci/resolve.js';
import { BlockportError } from '../errors.js';
import { clientFor, type ClientOptions, type RegistryClient } from './client.js';
import { RemoteImageWriter, type PushStats, type RemoteWriterOptions } from './remote-writer.js';
import { isManifestType, Repository } from './repository.js';
import { registerRegistryReferrers } from './referrers.js';
import type { DockerRef } from './transport.js';

export type { DockerRef };

/** How to reach a registry: a client to share, or options for a new one. */
export interface RemoteOptions extends ClientOptions {
  client?: RegistryClient;
  /** Names the image in messages (default: the reference). */
  label?: string;
  /** Of an index, the image to open (see OpenOptions). */
  platform?: OpenOptions['platform'];
}

/** Accepts "docker://..." or a parsed docker reference. */
export function dockerRef(ref: string | DockerRef): DockerRef {
  const r = typeof ref === 'string' ? parseRef(ref) : ref;
  if (r.transport !== 'docker') throw new BlockportError('EUSAGE', `${String(ref)}: not a docker:// reference`);
  return r as DockerRef;
}

/** The client and repository handle a reference names. */
export function repositoryFor(r: DockerRef, push: boolean, options: RemoteOptions = {}): Repository {
  return new Repository(options.client ?? clientFor(r.host, options), r.repo, push);
}

/** An image read from a registry: manifests fetched once and verified, blobs streamed and verified. */
export class RemoteImageReader extends ResolvedImageReader {
  constructor(
    ref: string,
    readonly repo: Repository,
    resolved: ResolvedImage,
  ) {
    super(ref, resolved);
  }

  protected openStored(desc: Descriptor): Promise<Readable> {
    return this.repo.openBlob(desc);
  }

  override async readBlob(desc: Descriptor): Promise<Buffer> {
    // the top was read while resolving; other manifests through the manifests API (registries may not serve them as blobs)
    if (isManifestType(desc.mediaType) && desc.digest !== this.top.digest) return (await this.repo.getManifest(desc.digest)).bytes;
    return super.readBlob(desc);
  }

  /** Registry blobs are never plain files here. */
  async locate(): Promise<undefined> {
    return undefined;
  }
}

/**
 * Opens docker://HOST/REPO:TAG (or @DIGEST) for reading. A tag naming an index is followed as for
 * layouts: the block-form manifest of a blockport index, else the host's platform.
 */
export async function openRemoteImage(ref: string | DockerRef, options: RemoteOptions = {}): Promise<RemoteImageReader> {
  const r = dockerRef(ref);
  const name = options.label ?? (typeof ref === 'string' ? ref : formatRef(r));
  const repo = repositoryFor(r, false, options);
  const top = await repo.getManifest(r.digest ?? r.tag!);
  const read = async (d: Descriptor): Promise<Buffer> => {
    if (d.digest === top.descriptor.digest) return top.bytes;
    if (isManifestType(d.mediaType)) return (await repo.getManifest(d.digest)).bytes;
    return repo.readBlob(d);
  };
  const resolved = await resolveImage(top.descriptor, read, name, options.platform);
  return new RemoteImageReader(name, repo, resolved);
}

/**
 * Opens docker://HOST/REPO:TAG for writing. Asks the registry about the tag first, so missing
 * credentials fail before any work is done.
 */
export async function openRemoteWriter(ref: string | DockerRef, options: RemoteOptions & RemoteWriterOptions = {}): Promise<RemoteImageWriter> {
  const r = dockerRef(ref);
  const repo = repositoryFor(r, true, options);
  await repo.hasManifest(r.digest ?? r.tag!);
  const childTags = options.childTags ?? (options.env ?? process.env).BLOCKPORT_REGISTRY_CHILD_TAGS !== '0';
  return new RemoteImageWriter(options.label ?? (typeof ref === 'string' ? ref : formatRef(r)), repo, { tag: r.tag, digest: r.digest }, { ...options, childTags });
}

export { RemoteImageWriter, type PushStats, type RemoteWriterOptions };

// the referrers of registry images are read and written here, from the moment the client is loaded
registerRegistryReferrers();
