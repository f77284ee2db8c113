import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { openFile } from '../cas/blob-store.js';
import type { Digest } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { errorText } from './client.js';
import type { Repository } from './repository.js';

/**
 * Where a blob's bytes come from. A file (a spool blockport wrote while hashing) or an opener can
 * be read again, so a failed upload is retried from a new session; a bare stream is sent once
 * and verified on the way, since nothing checked it before.
 */
export type BlobSource = { file: string } | { bytes: Buffer } | { open: () => Promise<Readable> } | { stream: Readable };

export interface UploadOptions {
  /** Blobs from files larger than this go up in PATCH chunks of this size (default 64 MiB). */
  chunkSize?: number;
  /** A repository on the same registry that holds the blob: try a cross-repository mount first. */
  mountFrom?: string;
  /** Whole-upload attempts for sources that can be read again (default 3). */
  tries?: number;
  backoffMs?: number;
  signal?: AbortSignal;
}

export type UploadOutcome = 'uploaded' | 'mounted';

export const DEFAULT_CHUNK_SIZE = 64 << 20;

/** An upload failure another session may get past: 5xx, 429, a reset connection. */
function retryable(err: unknown): boolean {
  return Boolean((err as { transient?: boolean }).transient);
}

function failure(what: string, status: number, text: string): BlockportError {
  const e = new BlockportError('EIO', `${what}: upload refused: ${text}`, { subject: what });
  (e as { transient?: boolean }).transient = status >= 500 || status === 429;
  return e;
}

/** Opens an upload session (POST), or mounts the blob from `mountFrom` when the registry can. */
async function start(repo: Repository, digest: Digest, o: UploadOptions, what: string): Promise<URL | 'mounted'> {
  const query = o.mountFrom && o.mountFrom !== repo.name ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(o.mountFrom)}` : '';
  const scopes = query ? [...repo.scopes, `repository:${o.mountFrom}:pull`] : repo.scopes;
  const res = await repo.client.request('POST', `/v2/${repo.name}/blobs/uploads/${query}`, { scopes, headers: { 'content-length': '0' }, body: Buffer.alloc(0), signal: o.signal }, what);
  if (res.status === 201 && query) {
    await res.body?.cancel();
    return 'mounted';
  }
  if (res.status !== 202) throw failure(what, res.status, await errorText(res));
  await res.body?.cancel();
  const location = res.headers.get('location');
  if (!location) throw new BlockportError('EIO', `${what}: registry sent no upload location`);
  return new URL(location, repo.client.base);
}

/** Sends `body` to the session and returns the next location (PATCH) or nothing (final PUT). */
async function send(repo: Repository, method: 'PATCH' | 'PUT', url: URL, data: Readable | Buffer, headers: Record<string, string>, o: UploadOptions, what: string): Promise<URL> {
  // bytes go as a one-shot stream: resending into the same session would append them twice
  const body = Buffer.isBuffer(data) && data.length > 0 ? Readable.from([data]) : data;
  let bodyError: unknown;
  if (!Buffer.isBuffer(body)) body.on('error', (err) => (bodyError ??= err));
  let res: Response;
  try {
    res = await repo.client.request(method, url.toString(), { scopes: repo.scopes, headers: { 'content-type': 'application/octet-stream', ...headers }, body, signal: o.signal }, what);
  } catch (err) {
    throw bodyError ?? err; // a digest mismatch or a source failure says more than "fetch failed"
  }
  if (bodyError) throw bodyError;
  const ok = method === 'PUT' ? res.status === 201 || res.status === 204 : res.status === 202 || res.status === 204;
  if (!ok) throw failure(what, res.status, await errorText(res));
  await res.body?.cancel();
  const next = res.headers.get('location');
  return next ? new URL(next, repo.client.base) : url;
}

function withDigest(url: URL, digest: Digest): URL {
  const u = new URL(url);
  u.searchParams.set('digest', digest);
  return u;
}

/** One upload session, start to finish. */
async function attempt(repo: Repository, blob: { digest: Digest; size: number }, source: BlobSource, o: UploadOptions, what: string): Promise<UploadOutcome> {
  const session = await start(repo, blob.digest, o, what);
  if (session === 'mounted') return 'mounted';
  const chunk = o.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const length = { 'content-length': String(blob.size) };
  if ('file' in source && blob.size > chunk) {
    let url = session;
    for (let off = 0; off < blob.size; off += chunk) {
      const end = Math.min(blob.size, off + chunk) - 1;
      const range = { 'content-range': `${off}-${end}`, 'content-length': String(end - off + 1) };
      url = await send(repo, 'PATCH', url, openFile(source.file, off, end), range, o, what);
    }
    await send(repo, 'PUT', withDigest(url, blob.digest), Buffer.alloc(0), { 'content-length': '0' }, o, what);
  } else if ('bytes' in source) {
    await send(repo, 'PUT', withDigest(session, blob.digest), source.bytes, length, o, what);
  } else if ('file' in source) {
    await send(repo, 'PUT', withDigest(session, blob.digest), openFile(source.file), length, o, what);
  } else if ('open' in source) {
    await send(repo, 'PUT', withDigest(session, blob.digest), await source.open(), length, o, what);
  } else {
    const verified = new VerifyingStream(blob.digest, blob.size, `blob ${blob.digest}`);
    source.stream.on('error', (err) => verified.destroy(err));
    await send(repo, 'PUT', withDigest(session, blob.digest), source.stream.pipe(verified), length, o, what);
  }
  return 'uploaded';
}

/**
 * Uploads one blob whose digest and size are known: a cross-repository mount when `mountFrom`
 * is given and the registry agrees, else POST then one streamed PUT (monolithic), or PATCH
 * chunks for big files. Sources that can be read again are retried from a fresh session.
 */
export async function uploadBlob(repo: Repository, blob: { digest: Digest; size: number }, source: BlobSource, o: UploadOptions = {}): Promise<UploadOutcome> {
  const what = `blob ${blob.digest} to ${repo.where()}`;
  const tries = 'stream' in source ? 1 : Math.max(1, o.tries ?? 3);
  for (let n = 1; ; n++) {
    try {
      return await attempt(repo, blob, source, o, what);
    } catch (err) {
      if (!retryable(err) || o.signal?.aborted) throw err;
      // the answer may be what got lost: a registry that has the blob needs no second session
      if ((await repo.blobSize(blob.digest).catch(() => undefined)) === blob.size) return 'uploaded';
      if (n >= tries) throw err;
      await sleep((o.backoffMs ?? 250) * 4 ** (n - 1));
    }
  }
}
