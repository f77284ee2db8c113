import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseDigest, sha256, type Digest } from '../digest/digest.js';
import { checkSize, hasherFor } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { MAX_JSON_BLOB, readSmall } from '../oci/json.js';
import { MediaType, isManifestType } from '../oci/media-types.js';

export { isManifestType };
import type { Descriptor } from '../oci/types.js';
import { errorText, type RegistryClient } from './client.js';
import { CHUNK } from '../chunk.js';

/** Registries refuse manifests larger than this (distribution, Harbor, ECR, GHCR all use 4 MiB); so does blockport. */
export const MAX_MANIFEST = 4 << 20;

function tooLarge(what: string, size: number): BlockportError {
  return new BlockportError('ECORRUPT', `${what}: manifest of ${size > MAX_MANIFEST + 1 ? `${size} bytes` : 'more than 4 MiB'} refused (the limit is ${MAX_MANIFEST} bytes)`, { subject: what });
}

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
      throw new BlockportError('ENOTFOUND', `${what}: no such image in the registry (404)`, { subject: what });
    }
    if (!res.ok) throw new BlockportError('EIO', `${what}: GET manifest answered ${await errorText(res)}`, { subject: what });
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > MAX_MANIFEST) {
      await res.body?.cancel();
      throw tooLarge(what, length);
    }
    const bytes = await readSmall(Readable.fromWeb(res.body as never), `${what}: manifest`, MAX_MANIFEST + 1).catch((err) => Promise.reject(err instanceof BlockportError && err.code === 'ECORRUPT' ? tooLarge(what, MAX_MANIFEST + 1) : err));
    if (bytes.length > MAX_MANIFEST) throw tooLarge(what, bytes.length);
    const digest = sha256(bytes);
    const claimed = res.headers.get('docker-content-digest');
    if ((ref.startsWith('sha256:') && digest !== ref) || (claimed?.startsWith('sha256:') && claimed !== digest)) {
      throw new BlockportError('EDIGEST', `${what}: manifest digest ${digest} does not match ${ref.startsWith('sha256:') ? ref : claimed}`, { subject: what });
    }
    return { descriptor: { mediaType: manifestType(bytes, res.headers.get('content-type')), digest, size: bytes.length }, bytes };
  }

  /** Whether the manifest `ref` exists (HEAD). */
  async hasManifest(ref: string): Promise<boolean> {
    const what = this.where(ref.startsWith('sha256:') ? `@${ref}` : `:${ref}`);
    const res = await this.client.request('HEAD', this.path('manifests', ref), { scopes: this.scopes, headers: { accept: MANIFEST_ACCEPT } }, what);
    await res.body?.cancel();
    if (res.status === 404) return false;
    if (!res.ok) throw new BlockportError('EIO', `${what}: HEAD manifest answered ${res.status} ${res.statusText}`.trim(), { subject: what });
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

  /** GET of a blob from byte `from` on (a Range request after the first); throws unless the answer is usable. */
  private async getBlob(desc: Descriptor, from: number, what: string, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = from > 0 ? { range: `bytes=${from}-` } : {};
    const res = await this.client.request('GET', this.path('blobs', parseDigest(desc.digest)), { scopes: this.scopes, headers, signal }, what);
    if (res.status === 404) {
      await res.body?.cancel();
      throw new BlockportError('EMISSING', `${what}: not in the registry (404)`, { subject: desc.digest });
    }
    if (!res.ok || !res.body) throw new BlockportError('EIO', `${what}: GET answered ${await errorText(res)}`, { subject: desc.digest });
    return res;
  }

  /**
   * The bytes of blob `desc`. When the connection drops mid-body, asks again for the rest with a
   * Range request (up to `tries` times), so a big block is not fetched twice; a registry that
   * ignores Range sends it all again and the bytes already had are skipped.
   */
  private async *blobBytes(desc: Descriptor, what: string, signal?: AbortSignal, tries = 5): AsyncGenerator<Buffer> {
    let received = 0;
    let res = await this.getBlob(desc, 0, what, signal);
    for (let attempt = 1; ; attempt++) {
      let skip = 0;
      if (received > 0) {
        const range = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
        if (res.status === 206 && range && Number(range[1]) !== received) throw new BlockportError('EIO', `${what}: registry answered a Range request for byte ${received} from byte ${range[1]}`, { subject: desc.digest });
        if (res.status !== 206) skip = received;
      }
      try {
        for await (const chunk of Readable.fromWeb(res.body as never, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) {
          if (skip >= chunk.length) {
            skip -= chunk.length;
            continue;
          }
          const part = skip ? chunk.subarray(skip) : chunk;
          skip = 0;
          received += part.length;
          yield part;
          if (received > desc.size) return; // the verifier fails it
        }
        return;
      } catch (err) {
        if (signal?.aborted || attempt >= tries || err instanceof BlockportError) {
          throw err instanceof BlockportError ? err : new BlockportError('EIO', `${what}: connection lost after ${received} of ${desc.size} bytes (${(err as Error).message})`, { subject: desc.digest, cause: err });
        }
      }
      this.resumes++;
      await sleep(100 * 2 ** (attempt - 1));
      res = await this.getBlob(desc, received, what, signal);
    }
  }

  /** Range requests sent to resume a blob after a dropped connection (for tests and statistics). */
  resumes = 0;

  /**
   * A stream of blob `desc`, failing at its end unless digest and size match. It reads nothing
   * before it is consumed, so it cannot fail while the caller is still getting ready to read it.
   */
  async openBlob(desc: Descriptor, signal?: AbortSignal): Promise<Readable> {
    checkSize(desc.size, this.where(`@${desc.digest}`));
    const what = `blob ${desc.digest} from ${this.where()}`;
    const it = this.blobBytes(desc, what, signal);
    const first = await it.next(); // a 404 or 401 fails here, before the caller writes anything
    async function* verified(): AsyncGenerator<Buffer> {
      const hasher = hasherFor(desc.size);
      let hashed = false;
      const check = (chunk: Buffer) => {
        const queued = hasher.update(chunk);
        if (hasher.size > desc.size) throw new BlockportError('EDIGEST', `${what}: more than the expected ${desc.size} bytes`, { subject: desc.digest });
        return queued;
      };
      try {
        if (!first.done) {
          await check(first.value);
          yield first.value;
        }
        for await (const chunk of it) {
          await check(chunk);
          yield chunk;
        }
        if (hasher.size !== desc.size) throw new BlockportError('EDIGEST', `${what}: truncated (${hasher.size} of ${desc.size} bytes)`, { subject: desc.digest });
        const got = await hasher.digest();
        hashed = true;
        if (got !== desc.digest) throw new BlockportError('EDIGEST', `${what}: digest mismatch (got ${got})`, { subject: desc.digest });
      } finally {
        if (!hashed) hasher.drop?.();
        await it.return(undefined);
      }
    }
    return Readable.from(verified(), { objectMode: false, highWaterMark: CHUNK });
  }

  /** A small blob (config), read whole and verified. */
  async readBlob(desc: Descriptor): Promise<Buffer> {
    if (desc.size > MAX_JSON_BLOB) throw new BlockportError('ECORRUPT', `${this.where()}: blob ${desc.digest} too large to read whole`);
    return readSmall(await this.openBlob(desc), `blob ${desc.digest}`);
  }
}
