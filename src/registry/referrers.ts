import { Readable } from 'node:stream';
import { digestHex, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import type { CopyThreads, Piece } from '../cas/copy-plan.js';
import type { StoredBlob } from '../cas/blob-store.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import { parseJson, readSmall } from '../oci/json.js';
import { MediaType, isManifestType } from '../oci/media-types.js';
import { bareDescriptor, checkDescriptor } from '../oci/resolve.js';
import type { Descriptor, ImageIndex } from '../oci/types.js';
import { COSIGN_KINDS, cosignTag, type Referrer, type ReferrerSink, type ReferrerSource } from '../referrers/referrer.js';
import { registerReferrerPlace } from '../referrers/places.js';
import { RemoteImageWriter } from './remote-writer.js';
import { Repository } from './repository.js';

/** The referrers tag schema's tag for `subject` (OCI distribution 1.1, for registries without the API). */
export function fallbackTag(subject: Digest): string {
  return `sha256-${digestHex(subject)}`;
}

/** Null when the manifest is not there. */
async function manifestOrNone(repo: Repository, ref: string) {
  return repo.getManifest(ref).catch((err) => (err instanceof BlockportError && err.code === 'ENOTFOUND' ? null : Promise.reject(err)));
}

/**
 * The OCI 1.1 referrers API (`GET /v2/NAME/referrers/DIGEST`): the index it answers, or null when
 * the registry has no such API (distribution 2.x answers 404).
 */
async function referrersApi(repo: Repository, subject: Digest): Promise<ImageIndex | null> {
  const what = repo.where(`@${subject} referrers`);
  const res = await repo.client.request('GET', `/v2/${repo.name}/referrers/${subject}`, { scopes: repo.scopes, headers: { accept: MediaType.ociIndex } }, what);
  const type = (res.headers.get('content-type') ?? '').split(';')[0].trim();
  if (!res.ok || type !== MediaType.ociIndex || !res.body) {
    await res.body?.cancel();
    return null;
  }
  return parseJson<ImageIndex>(await readSmall(Readable.fromWeb(res.body as never), what), what);
}

/** The descriptors an index lists, checked. */
function listed(idx: ImageIndex | null, where: string): Descriptor[] {
  if (!idx || !Array.isArray(idx.manifests)) return [];
  return idx.manifests.map((m, i) => checkDescriptor(m, `${where}: manifests[${i}]`));
}

/** A registry repository's referrers: the referrers API, else the tag schema's index, plus cosign's tags. */
export class RegistryReferrers implements ReferrerSource {
  readonly where: string;

  constructor(readonly repo: Repository) {
    this.where = repo.where();
  }

  async list(subject: Digest): Promise<Referrer[]> {
    const idx = (await referrersApi(this.repo, subject)) ?? (await this.fallbackIndex(subject));
    const out: Referrer[] = listed(idx, this.repo.where(` referrers of ${subject}`)).filter((d) => isManifestType(d.mediaType)).map((d) => ({ descriptor: bareDescriptor(d), subject }));
    for (const kind of COSIGN_KINDS) {
      const tag = cosignTag(subject, kind);
      const m = await manifestOrNone(this.repo, tag);
      if (m) out.push({ descriptor: m.descriptor, subject, tag });
    }
    return out;
  }

  /** The index the referrers tag schema keeps for `subject`, or null. */
  private async fallbackIndex(subject: Digest): Promise<ImageIndex | null> {
    const m = await manifestOrNone(this.repo, fallbackTag(subject));
    return m && parseJson<ImageIndex>(m.bytes, this.repo.where(`:${fallbackTag(subject)}`));
  }

  async readBlob(d: Descriptor): Promise<Buffer> {
    return isManifestType(d.mediaType) ? (await this.repo.getManifest(d.digest)).bytes : this.repo.readBlob(d);
  }

  async openBlob(d: Descriptor): Promise<Readable> {
    return isManifestType(d.mediaType) ? Readable.from([await this.readBlob(d)]) : this.repo.openBlob(d);
  }
}

/**
 * Writes a referrer to a registry: a cosign one under its tag, an OCI 1.1 one by digest, and then
 * (unless the registry has the referrers API, which lists it by itself) added to the index of the
 * referrers tag schema, as OCI distribution 1.1 asks of clients.
 */
class RegistryReferrerWriter implements ImageWriter {
  readonly ref: string;
  private readonly inner: RemoteImageWriter;

  constructor(
    private readonly repo: Repository,
    private readonly r: Referrer,
  ) {
    this.ref = repo.where(r.tag ? `:${r.tag}` : `@${r.descriptor.digest}`);
    this.inner = new RemoteImageWriter(this.ref, repo, r.tag ? { tag: r.tag } : { digest: r.descriptor.digest });
  }

  hasBlob(desc: Descriptor): Promise<boolean> {
    return this.inner.hasBlob(desc);
  }

  putBlob(source: Readable, expected?: StoredBlob): Promise<StoredBlob> {
    return this.inner.putBlob(source, expected);
  }

  putPlan(plan: AsyncIterable<Piece>, threads: CopyThreads, expected?: StoredBlob): Promise<StoredBlob> {
    return this.inner.putPlan(plan, threads, expected);
  }

  copyBlob(from: ImageReader, desc: Descriptor): Promise<void> {
    return this.inner.copyBlob(from, desc);
  }

  async commit(top: Descriptor): Promise<void> {
    await this.inner.commit(top);
    if (this.r.tag || (await referrersApi(this.repo, this.r.subject))) return;
    const tag = fallbackTag(this.r.subject);
    const old = await manifestOrNone(this.repo, tag);
    const idx: ImageIndex = old ? parseJson<ImageIndex>(old.bytes, this.repo.where(`:${tag}`)) : { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
    if (!Array.isArray(idx.manifests)) idx.manifests = [];
    if (idx.manifests.some((m) => m.digest === top.digest)) return;
    idx.manifests.push(bareDescriptor({ ...top, ...(this.r.descriptor.artifactType ? { artifactType: this.r.descriptor.artifactType } : {}) }));
    await this.repo.putManifest(tag, Buffer.from(JSON.stringify(idx)), MediaType.ociIndex);
  }

  abort(): Promise<void> {
    return this.inner.abort();
  }
}

/** Where referrers written beside a registry image go: the same repository. */
export class RegistryReferrerSink implements ReferrerSink {
  readonly where: string;

  constructor(readonly repo: Repository) {
    this.where = repo.where();
  }

  async writer(r: Referrer): Promise<ImageWriter> {
    return new RegistryReferrerWriter(this.repo, r);
  }
}

/** The repository a registry reader or writer works on (both keep it as `repo`). */
function repoOf(x: object): Repository | undefined {
  const repo = (x as { repo?: unknown }).repo;
  return repo instanceof Repository ? repo : undefined;
}

/**
 * Makes registry images' referrers known to bundle, copy, push, pull and materialize; called when
 * the registry client loads (remote-image.ts), which is before any registry image exists.
 */
export function registerRegistryReferrers(): void {
  registerReferrerPlace({
    source: (img) => {
      const repo = repoOf(img);
      return repo && new RegistryReferrers(repo);
    },
    sink: (w) => {
      const repo = repoOf(w);
      return repo && new RegistryReferrerSink(repo);
    },
  });
}
