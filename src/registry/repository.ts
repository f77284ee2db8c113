import { Readable } from 'node:stream';
import { parseDigest, sha256, type Digest } from '../digest/digest.js';
import { checkSize, VerifyingStream } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { MAX_JSON_BLOB, readSmall } from '../oci/json.js';
import { MediaType, isManifestType } from '../oci/media-types.js';

export { isManifestType };
import type { Descriptor } from '../oci/types.js';
import { errorText, type RegistryClient } from './client.js';
import { CHUNK } from '../chunk.js';

/** What GET/HEAD of a manifest tells: the manifest a tag or digest names right now. */
export interface ManifestResult {
  descriptor: Descriptor;
  bytes: Buffer;
}

/** The manifest media types blockport reads, in the order it prefers them. */
export const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(', ');


/** The media type a manifest declares in its body, else what the server said. */
function manifestType(bytes: Buffer, header: string | null): string {
  try {
    const declared = (JSON.parse(bytes.toString()) as { mediaType?: unknown }).mediaType;
    if (typeof declared === 'string' && declared) return declared;
  } catch {
    // checked by the reader that parses it
  }
  return (header ?? '').split(';')[0].trim();
}

/** One repository (e.g. "team/app") of a registry: manifests and blobs by the distribution API. */
export class Repository {
  constructor(
    readonly client: RegistryClient,
    readonly name: string,
    /** Whether this handle writes (token scope pull,push) or only reads (pull). */
    readonly push = false,
  ) {}

  get scopes(): string[] {
    return [`repository:${this.name}:${this.push ? 'pull,push' : 'pull'}`];
  }

  /** "HOST/REPO" plus what, for messages. */
  where(what = ''): string {
    return `${this.client.host}/${this.name}${what}`;
  }

  path(kind: 'manifests' | 'blobs', ref: string): string {
    return `/v2/${this.name}/${kind}/${ref}`;
  }

  /** Fetches the manifest `ref` (tag or digest), checking its digest when `ref` is one. */
  async getManifest(ref: string): Promise<ManifestResult> {
    const what = this.where(ref.startsWith('sha256:') ? `@${ref}` : `:${ref}`);
    const res = await this.client.request('GET', this.path('manifests', ref), { scopes: this.scopes, headers: { accept: MANIFEST_ACCEPT } }, what);
    if (res.status === 404) {
      await res.body?.cancel();
      throw new BlockportError('ENOTFOUND', `${what}: no such image in the registry`, { subject: what });
    }
    if (!res.ok) throw new BlockportError('EIO', `${what}: GET manifest: ${await errorText(res)}`, { subject: what });
    const bytes = await readSmall(Readable.fromWeb(res.body as never), `${what}: manifest`, MAX_JSON_BLOB);
    const digest = sha256(bytes);
    const claimed = res.headers.get('docker-content-digest');
    if ((ref.startsWith('sha256:') && digest !== ref) || (claimed?.startsWith('sha256:') && claimed !== digest)) {
      throw new BlockportError('EDIGEST', `${what}: manifest digest ${digest} does not match ${ref.startsWith('sha256:') ? ref : claimed}`, { subject: what });
    }
    return { descriptor: { mediaType: manifestType(bytes, res.headers.get('content-type')), digest, size: bytes.length }, bytes };
  }

  /** Whether the manifest `ref` exists (HEAD). */
  async hasManifest(ref: string): Promise<boolean> {
    const res = await this.client.request('HEAD', this.path('manifests', ref), { scopes: this.scopes, headers: { accept: MANIFEST_ACCEPT } }, this.where(`@${ref}`));
    await res.body?.cancel();
    if (res.status === 404) return false;
    if (!res.ok) throw new BlockportError('EIO', `${this.where(`@${ref}`)}: HEAD manifest answered ${res.status}`);
    return true;
  }

  /** Uploads a manifest under `ref` (a tag, or its own digest). */
  async putManifest(ref: string, bytes: Buffer, mediaType: string): Promise<void> {
    const what = this.where(ref.startsWith('sha256:') ? `@${ref}` : `:${ref}`);
    const res = await this.client.request('PUT', this.path('manifests', ref), { scopes: this.scopes, headers: { 'content-type': mediaType }, body: bytes }, what);
    if (res.status !== 201 && !res.ok) throw new BlockportError('EIO', `${what}: PUT manifest refused: ${await errorText(res)}`, { subject: what });
    await res.body?.cancel();
    const claimed = res.headers.get('docker-content-digest');
    if (claimed?.startsWith('sha256:') && claimed !== sha256(bytes)) {
      throw new BlockportError('EDIGEST', `${what}: registry stored the manifest as ${claimed}, not ${sha256(bytes)}`, { subject: what });
    }
  }

  /** The size of blob `digest` in this repository, or undefined when it is not there (HEAD). */
  async blobSize(digest: Digest): Promise<number | undefined> {
    const res = await this.client.request('HEAD', this.path('blobs', digest), { scopes: this.scopes }, this.where(`@${digest}`));
    await res.body?.cancel();
    if (res.status === 404) return undefined;
    if (!res.ok) throw new BlockportError('EIO', `${this.where(`@${digest}`)}: HEAD blob answered ${res.status}`);
    const n = Number(res.headers.get('content-length'));
    return Number.isSafeInteger(n) ? n : undefined;
  }

  /** A stream of blob `desc`, failing at its end unless digest and size match. */
  async openBlob(desc: Descriptor, signal?: AbortSignal): Promise<Readable> {
    checkSize(desc.size, this.where(`@${desc.digest}`));
    const what = `blob ${desc.digest} from ${this.where()}`;
    const res = await this.client.request('GET', this.path('blobs', parseDigest(desc.digest)), { scopes: this.scopes, signal }, what);
    if (res.status === 404) {
      await res.body?.cancel();
      throw new BlockportError('EMISSING', `${what}: not in the registry`, { subject: desc.digest });
    }
    if (!res.ok || !res.body) throw new BlockportError('EIO', `${what}: ${await errorText(res)}`, { subject: desc.digest });
    const raw = Readable.fromWeb(res.body as never, { highWaterMark: CHUNK });
    const verified = new VerifyingStream(desc.digest, desc.size, what);
    raw.on('error', (err) => verified.destroy(new BlockportError('EIO', `${what}: ${err.message}`, { subject: desc.digest, cause: err })));
    verified.on('close', () => raw.destroy());
    return raw.pipe(verified);
  }

  /** A small blob (config), read whole and verified. */
  async readBlob(desc: Descriptor): Promise<Buffer> {
    if (desc.size > MAX_JSON_BLOB) throw new BlockportError('ECORRUPT', `${this.where()}: blob ${desc.digest} too large to read whole`);
    return readSmall(await this.openBlob(desc), `blob ${desc.digest}`);
  }
}
