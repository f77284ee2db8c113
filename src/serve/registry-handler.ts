import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isDigest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { parseRange } from './byte-range.js';
import type { LayerCache, LayerOrigin } from './layer-cache.js';
import { RegistryError, sendError } from './registry-error.js';
import type { ServeStats } from './serve-stats.js';
import type { BlobSource, ServedManifest } from './served-image.js';
import { REPO_RE, type StoreCatalog } from './store-catalog.js';

/** One request being answered: body bytes sent so far, and where a layer's bytes came from. */
export interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  sent: number;
  origin?: LayerOrigin;
  /** Why the answer is an error or was cut short, for the log. */
  error?: string;
}

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' };

/**
 * The read side of the OCI distribution API over the store: `/v2/`, manifests and blobs (GET,
 * HEAD, ranges), tags list and catalog (with `n`/`last` pagination). Every write is 405 UNSUPPORTED.
 */
export class RegistryHandler {
  constructor(
    private readonly catalog: StoreCatalog,
    private readonly cache: LayerCache,
    private readonly stats: ServeStats,
  ) {}

  async handle(x: Exchange): Promise<void> {
    const head = x.req.method === 'HEAD';
    for (const [k, v] of Object.entries(API_VERSION)) x.res.setHeader(k, v);
    try {
      if (x.req.method !== 'GET' && !head) throw new RegistryError(405, 'UNSUPPORTED', 'this registry is read-only (blockport serve)', { Allow: 'GET, HEAD' });
      await this.route(x, head);
    } catch (err) {
      x.error = (err as Error)?.message ?? String(err);
      if (x.res.headersSent) {
        // a body cut short: the client sees a truncated blob, never a complete wrong one
        x.res.destroy(err as Error);
        return;
      }
      x.sent += sendError(x.res, asRegistryError(err), head);
    }
  }

  private async route(x: Exchange, head: boolean): Promise<void> {
    const path = x.url.pathname;
    if (path === '/v2/' || path === '/v2') return this.json(x, head, {});
    if (path === '/v2/_catalog') return this.listing(x, head, 'repositories', [...(await this.catalog.repositories()).keys()]);
    let m = /^\/v2\/(.+)\/tags\/list$/.exec(path);
    if (m) return this.listing(x, head, 'tags', [...(await this.repoTags(m[1])).keys()], m[1]);
    m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (m) return this.manifest(x, head, m[1], decodeURIComponent(m[2]));
    m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(path);
    if (m && m[2] !== 'uploads') return this.blob(x, head, m[1], decodeURIComponent(m[2]));
    throw new RegistryError(404, 'UNSUPPORTED', `${path}: not part of the read API this registry serves`);
  }

  private async repoTags(repo: string) {
    if (!REPO_RE.test(repo)) throw new RegistryError(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(repo)}`);
    const tags = await this.catalog.tags(repo);
    if (!tags) throw new RegistryError(404, 'NAME_UNKNOWN', `repository ${repo} is not in the store`);
    return tags;
  }

  private json(x: Exchange, head: boolean, value: unknown, headers: Record<string, string> = {}): void {
    const body = Buffer.from(JSON.stringify(value));
    x.res.writeHead(200, { ...headers, 'Content-Type': 'application/json', 'Content-Length': String(body.length) });
    x.res.end(head ? undefined : body);
    if (!head) x.sent += body.length;
  }

  /** Tags list and catalog: sorted, `n` at most, after `last`; a Link header names the next page. */
  private listing(x: Exchange, head: boolean, key: 'tags' | 'repositories', all: string[], repo?: string): void {
    all.sort();
    const last = x.url.searchParams.get('last');
    const nParam = x.url.searchParams.get('n');
    if (nParam !== null && !/^\d+$/.test(nParam)) throw new RegistryError(400, 'UNSUPPORTED', `invalid n ${JSON.stringify(nParam)}`);
    let items = last === null ? all : all.filter((t) => t > last);
    const headers: Record<string, string> = {};
    if (nParam !== null) {
      const n = Number(nParam);
      if (items.length > n) {
        items = items.slice(0, n);
        if (n > 0) headers.Link = `<${x.url.pathname}?n=${n}&last=${encodeURIComponent(items[n - 1])}>; rel="next"`;
      }
    }
    this.json(x, head, repo === undefined ? { [key]: items } : { name: repo, [key]: items }, headers);
  }

  private async manifest(x: Exchange, head: boolean, repo: string, ref: string): Promise<void> {
    const tags = await this.repoTags(repo);
    let m: ServedManifest | undefined;
    if (isDigest(ref)) {
      m = await this.catalog.manifestByDigest(repo, ref);
    } else {
      const top = tags.get(ref);
      if (top) m = (await this.catalog.image(repo, ref, top).catch(manifestError)).top;
    }
    if (!m) throw new RegistryError(404, 'MANIFEST_UNKNOWN', `manifest ${repo}:${ref} is not in the store`);
    if (!accepts(x.req.headers.accept, m.mediaType)) {
      throw new RegistryError(404, 'MANIFEST_UNKNOWN', `${repo}:${ref} is a ${m.mediaType}, which the Accept header does not list`);
    }
    x.res.writeHead(200, { 'Content-Type': m.mediaType, 'Content-Length': String(m.bytes.length), 'Docker-Content-Digest': m.digest, ETag: `"${m.digest}"` });
    x.res.end(head ? undefined : m.bytes);
    if (head) return;
    x.sent += m.bytes.length;
    this.stats.manifestSent(m);
  }

  private async blob(x: Exchange, head: boolean, repo: string, ref: string): Promise<void> {
    await this.repoTags(repo);
    if (!isDigest(ref)) throw new RegistryError(400, 'DIGEST_INVALID', `invalid digest ${JSON.stringify(ref)} (want sha256:<64 hex>)`);
    const src = await this.catalog.blob(repo, ref);
    if (!src) throw new RegistryError(404, 'BLOB_UNKNOWN', `blob ${ref} is not part of any image of ${repo}`);
    const range = parseRange(x.req.headers.range, src.size);
    const start = range?.start ?? 0;
    const end = range?.end ?? src.size - 1;
    const headers: Record<string, string> = {
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(end - start + 1),
      'Docker-Content-Digest': src.digest,
      'Accept-Ranges': 'bytes',
      ETag: `"${src.digest}"`,
    };
    if (range) headers['Content-Range'] = `bytes ${start}-${end}/${src.size}`;
    if (head || src.size === 0) {
      x.res.writeHead(range ? 206 : 200, headers);
      x.res.end();
      return;
    }
    const body = await this.open(x, src, start, end);
    x.res.writeHead(range ? 206 : 200, headers);
    await this.send(x, body);
  }

  private async open(x: Exchange, src: BlobSource, start: number, end: number): Promise<Readable> {
    if (src.kind === 'spliced') {
      const { stream, origin } = await this.cache.open(src, start, end);
      x.origin = origin;
      return stream;
    }
    const whole = start === 0 && end === src.size - 1;
    return this.catalog.layout.blobs.open(src.digest, src.size, whole ? {} : { start, end });
  }

  private async send(x: Exchange, body: Readable): Promise<void> {
    const count = async function* (this: void, source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        x.sent += chunk.length;
        yield chunk;
      }
    };
    try {
      await pipeline(body, count, x.res);
    } finally {
      this.stats.blobSent(x.sent);
    }
  }
}

/** Whether an Accept header admits `mediaType`; no header, wildcards or no manifest type at all do. */
export function accepts(header: string | undefined, mediaType: string): boolean {
  if (!header) return true;
  const types = header.split(',').map((t) => t.split(';')[0].trim().toLowerCase()).filter(Boolean);
  if (types.some((t) => t === '*/*' || t === 'application/*' || t === mediaType)) return true;
  return !types.some((t) => t.includes('manifest') || t.includes('image.index'));
}

/** An image that cannot be served (blocks missing, say) fails at its manifest, before any layer moves. */
function manifestError(err: unknown): never {
  if (err instanceof BlockportError && err.code === 'EMISSING') throw new RegistryError(404, 'MANIFEST_BLOB_UNKNOWN', err.message);
  throw err;
}

function asRegistryError(err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  if (err instanceof BlockportError && (err.code === 'ENOTFOUND' || err.code === 'EMISSING')) return new RegistryError(404, 'BLOB_UNKNOWN', err.message);
  if (err instanceof URIError) return new RegistryError(400, 'NAME_INVALID', 'malformed percent-encoding in the path');
  return new RegistryError(500, 'UNKNOWN', (err as Error)?.message ?? String(err));
}
