/**
 * The registry client against a small in-memory registry that speaks the distribution API: token
 * and basic auth, injected 5xx answers and connection resets, uploads (monolithic, chunked, mount).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../transports.js';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { sha256, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { MediaType } from '../oci/media-types.js';
import { RegistryClient } from './client.js';
import { openRemoteImage, openRemoteWriter } from './remote-image.js';
import { Repository } from './repository.js';
import { uploadBlob } from './upload.js';

const isCode = (code: string) => (err: unknown) => err instanceof BlockportError && err.code === code;

/** An in-memory registry. `auth` picks the scheme; `faults` makes the next requests matching a key fail. */
class FakeRegistry {
  readonly blobs = new Map<string, Buffer>(); // `${repo}@${digest}`
  readonly manifests = new Map<string, { bytes: Buffer; type: string }>(); // `${repo}:${ref}`
  readonly uploads = new Map<string, { repo: string; data: Buffer[] }>();
  readonly log: string[] = [];
  readonly tokenRequests: string[] = [];
  /** "METHOD /path-prefix" -> how many times to answer 500, destroy the socket, or expire all tokens first. */
  readonly faults = new Map<string, { n: number; kind: 500 | 'reset' | 'expire' }>();
  auth: 'none' | 'basic' | 'bearer' = 'none';
  /** Bumping it expires every token handed out so far. */
  generation = 0;
  private server!: Server;
  private next = 0;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res).catch((err) => res.writeHead(599).end(String(err))));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  private authorized(req: IncomingMessage): boolean {
    const h = req.headers.authorization ?? '';
    if (this.auth === 'basic') return h === `Basic ${Buffer.from('alice:pw').toString('base64')}`;
    if (this.auth === 'bearer') return h.startsWith(`Bearer tok${this.generation}:`);
    return true;
  }

  private challenge(res: ServerResponse): void {
    const c = this.auth === 'basic' ? 'Basic realm="fake"' : `Bearer realm="http://${this.host}/token",service="fake"`;
    res.writeHead(401, { 'www-authenticate': c, 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, `http://${this.host}`);
    const body = Buffer.concat(await Readable.from(req).toArray());
    this.log.push(`${req.method} ${url.pathname}${url.search}`);
    for (const [key, f] of this.faults) {
      const [m, p] = key.split(' ');
      if (f.n > 0 && req.method === m && url.pathname.startsWith(p)) {
        f.n--;
        if (f.kind === 'expire') {
          this.generation++;
          continue;
        }
        if (f.kind === 'reset') return void req.socket.destroy();
        return void res.writeHead(500).end();
      }
    }
    if (url.pathname === '/token') {
      this.tokenRequests.push(`${req.headers.authorization ?? 'anonymous'} ${url.searchParams.getAll('scope').join(' ')}`);
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `tok${this.generation}:${url.searchParams.getAll('scope').join(' ')}` }));
    }
    if (!this.authorized(req)) return this.challenge(res);
    if (url.pathname === '/v2/') return void res.writeHead(200).end('{}');
    const up = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(url.pathname);
    if (up) return this.upload(req, res, url, up[1], up[2], body);
    const m = /^\/v2\/(.+)\/(blobs|manifests)\/([^/]+)$/.exec(url.pathname);
    if (!m) return void res.writeHead(404).end();
    const [, repo, kind, ref] = m;
    if (kind === 'blobs') {
      const b = this.blobs.get(`${repo}@${ref}`);
      if (!b) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': b.length, 'docker-content-digest': ref });
      return void res.end(req.method === 'HEAD' ? undefined : b);
    }
    if (req.method === 'PUT') {
      const entry = { bytes: body, type: String(req.headers['content-type']) };
      this.manifests.set(`${repo}:${ref}`, entry);
      this.manifests.set(`${repo}:${sha256(body)}`, entry);
      return void res.writeHead(201, { 'docker-content-digest': sha256(body) }).end();
    }
    const mf = this.manifests.get(`${repo}:${ref}`);
    if (!mf) return void res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
    res.writeHead(200, { 'content-type': mf.type, 'content-length': mf.bytes.length, 'docker-content-digest': sha256(mf.bytes) });
    res.end(req.method === 'HEAD' ? undefined : mf.bytes);
  }

  private upload(req: IncomingMessage, res: ServerResponse, url: URL, repo: string, id: string, body: Buffer): void {
    if (req.method === 'POST') {
      const mount = url.searchParams.get('mount');
      const from = url.searchParams.get('from');
      const have = mount && from ? this.blobs.get(`${from}@${mount}`) : undefined;
      if (have) {
        this.blobs.set(`${repo}@${mount}`, have);
        return void res.writeHead(201).end();
      }
      const nid = `u${this.next++}`;
      this.uploads.set(nid, { repo, data: [] });
      return void res.writeHead(202, { location: `/v2/${repo}/blobs/uploads/${nid}?_state=x` }).end();
    }
    const u = this.uploads.get(id);
    if (!u) return void res.writeHead(404).end();
    const have = u.data.reduce((n, b) => n + b.length, 0);
    if (req.method === 'PATCH') {
      const start = Number(String(req.headers['content-range']).split('-')[0]);
      if (start !== have) return void res.writeHead(416).end();
      u.data.push(body);
      return void res.writeHead(202, { location: `/v2/${repo}/blobs/uploads/${id}?_state=y`, range: `0-${have + body.length - 1}` }).end();
    }
    u.data.push(body);
    const all = Buffer.concat(u.data);
    const digest = `sha256:${createHash('sha256').update(all).digest('hex')}`;
    this.uploads.delete(id);
    if (digest !== url.searchParams.get('digest')) return void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'digest invalid' }] }));
    this.blobs.set(`${repo}@${digest}`, all);
    res.writeHead(201, { location: `/v2/${repo}/blobs/${digest}` }).end();
  }

  count(prefix: string): number {
    return this.log.filter((l) => l.startsWith(prefix)).length;
  }
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

describe('registry client against an in-memory registry', () => {
  const reg = new FakeRegistry();
  const fast = { backoffMs: 1, env: { DOCKER_CONFIG: join(tmpdir(), 'blockport-no-such-dir') } };
  before(() => reg.start());
  after(() => reg.stop());

  it('bearer: fetches one token per scope, with basic credentials when it has them', async () => {
    reg.auth = 'bearer';
    const blob = bytes(1000, 1);
    const d = sha256(blob);
    reg.blobs.set(`team/app@${d}`, blob);
    const client = new RegistryClient(reg.host, { ...fast, env: { ...fast.env, BLOCKPORT_REGISTRY_AUTH: 'alice:pw' } });
    const repo = new Repository(client, 'team/app');
    assert.equal(await repo.blobSize(d), 1000);
    assert.deepEqual(await repo.readBlob({ mediaType: 'x', digest: d, size: 1000 }), blob);
    assert.deepEqual(reg.tokenRequests, [`Basic ${Buffer.from('alice:pw').toString('base64')} repository:team/app:pull`]);
    reg.auth = 'none';
  });

  it('bearer: a token that expires during a streamed upload means a new session with a new token', async () => {
    reg.auth = 'bearer';
    reg.tokenRequests.length = 0;
    const dir = await mkdtemp(join(tmpdir(), 'blockport-exp-'));
    try {
      const file = join(dir, 'blob');
      const blob = bytes(3000, 9);
      await writeFile(file, blob);
      const repo = new Repository(new RegistryClient(reg.host, fast), 'exp', true);
      assert.equal(await repo.blobSize(sha256(blob)), undefined);
      // the token expires between the POST that opens the session and the PUT that streams the bytes
      reg.faults.set('PUT /v2/exp/blobs/uploads/', { n: 1, kind: 'expire' });
      await uploadBlob(repo, { digest: sha256(blob), size: blob.length }, { file }, { backoffMs: 1 });
      assert.deepEqual(reg.blobs.get(`exp@${sha256(blob)}`), blob);
      assert.equal(reg.tokenRequests.length, 2);
      assert.equal(reg.count('POST /v2/exp/blobs/uploads/'), 2);
    } finally {
      reg.auth = 'none';
      reg.generation = 0;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('basic: credentials from docker config.json; none at all is a one-line unauthorized error', async () => {
    reg.auth = 'basic';
    const dir = await mkdtemp(join(tmpdir(), 'blockport-cfg-'));
    try {
      await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:pw').toString('base64') } } }));
      const ok = new Repository(new RegistryClient(reg.host, { backoffMs: 1, env: { DOCKER_CONFIG: dir } }), 'app');
      assert.equal(await ok.hasManifest('1'), false);
      const anon = new Repository(new RegistryClient(reg.host, fast), 'app');
      await assert.rejects(anon.hasManifest('1'), (err: unknown) => isCode('EIO')(err) && /unauthorized \(401\): authentication required/.test((err as Error).message) && !(err as Error).message.includes('\n'));
      const wrong = new Repository(new RegistryClient(reg.host, { ...fast, env: { ...fast.env, BLOCKPORT_REGISTRY_AUTH: 'alice:nope' } }), 'app');
      await assert.rejects(wrong.hasManifest('1'), /refused the credentials/);
    } finally {
      reg.auth = 'none';
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('retries 5xx and reset connections at most three times', async () => {
    const blob = bytes(500, 2);
    const d = sha256(blob);
    reg.blobs.set(`app@${d}`, blob);
    const repo = new Repository(new RegistryClient(reg.host, fast), 'app');
    reg.faults.set(`GET /v2/app/blobs/${d}`, { n: 2, kind: 500 });
    assert.deepEqual(await repo.readBlob({ mediaType: 'x', digest: d, size: 500 }), blob);
    reg.faults.set(`HEAD /v2/app/blobs/${d}`, { n: 1, kind: 'reset' });
    assert.equal(await repo.blobSize(d), 500);
    reg.faults.set(`GET /v2/app/blobs/${d}`, { n: 3, kind: 500 });
    const before = reg.count(`GET /v2/app/blobs/${d}`);
    await assert.rejects(repo.readBlob({ mediaType: 'x', digest: d, size: 500 }), isCode('EIO'));
    assert.equal(reg.count(`GET /v2/app/blobs/${d}`) - before, 3);
  });

  it('refuses a blob whose bytes do not match its digest', async () => {
    const d = sha256('the real content');
    reg.blobs.set(`app@${d}`, Buffer.from('something else!!'));
    const repo = new Repository(new RegistryClient(reg.host, fast), 'app');
    await assert.rejects(repo.readBlob({ mediaType: 'x', digest: d, size: 16 }), isCode('EDIGEST'));
  });

  it('uploads monolithic, chunked (PATCH), by mount, and retries a file upload in a new session', async () => {
    const repo = new Repository(new RegistryClient(reg.host, fast), 'up', true);
    const big = bytes(10_000, 3);
    const d = sha256(big);
    assert.equal(await uploadBlob(repo, { digest: d, size: big.length }, { stream: Readable.from([big]) }), 'uploaded');
    assert.deepEqual(reg.blobs.get(`up@${d}`), big);

    const dir = await mkdtemp(join(tmpdir(), 'blockport-up-'));
    try {
      const file = join(dir, 'blob');
      const big2 = bytes(10_000, 4);
      await writeFile(file, big2);
      const patches = reg.count('PATCH');
      reg.faults.set('PATCH /v2/up/blobs/uploads/', { n: 1, kind: 500 });
      await uploadBlob(repo, { digest: sha256(big2), size: big2.length }, { file }, { chunkSize: 4096, backoffMs: 1 });
      assert.deepEqual(reg.blobs.get(`up@${sha256(big2)}`), big2);
      assert.equal(reg.count('PATCH') - patches, 4, 'one refused chunk, then a new session of three');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }

    const other = new Repository(repo.client, 'other', true);
    const puts = reg.count('PUT');
    assert.equal(await uploadBlob(other, { digest: d, size: big.length }, { stream: Readable.from([big]) }, { mountFrom: 'up' }), 'mounted');
    assert.equal(reg.count('PUT'), puts, 'a mount sends no bytes');
  });

  it('a streamed blob that does not match its digest fails with EDIGEST and stores nothing', async () => {
    const repo = new Repository(new RegistryClient(reg.host, fast), 'up', true);
    const d = sha256('promised');
    await assert.rejects(uploadBlob(repo, { digest: d, size: 8 }, { stream: Readable.from([Buffer.from('delivered')]) }), isCode('EDIGEST'));
    assert.equal(reg.blobs.has(`up@${d}`), false);
  });
});

describe('RemoteImageWriter and openRemoteImage against an in-memory registry', () => {
  const reg = new FakeRegistry();
  const opts = { backoffMs: 1, env: { DOCKER_CONFIG: join(tmpdir(), 'blockport-no-such-dir') } };
  before(() => reg.start());
  after(() => reg.stop());

  /** Writes a one-layer image plus, with `blocks`, a blockport index; returns the top descriptor. */
  async function push(ref: string, layer: Buffer, blocks: Buffer[]) {
    const w = await openRemoteWriter(ref, opts);
    const stored = await w.putBlob(Readable.from([layer]));
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [stored.digest] } }));
    const cfg = await w.putBlob(Readable.from([config]), { digest: sha256(config), size: config.length });
    const blockDescs = [];
    for (const b of blocks) blockDescs.push({ mediaType: MediaType.blockFile, ...(await w.putBlob(Readable.from([b]))) });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, ...cfg }, layers: [{ mediaType: MediaType.ociLayer, digest: stored.digest, size: stored.size }] }));
    const mdesc = { mediaType: MediaType.ociManifest, digest: sha256(manifest), size: manifest.length };
    await w.putBlob(Readable.from([manifest]), mdesc);
    const carrier = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: MediaType.blockCarrier, config: { mediaType: MediaType.ociConfig, ...cfg }, layers: blockDescs.map(({ created: _, ...d }) => d) }));
    const cdesc = { mediaType: MediaType.ociManifest, digest: sha256(carrier), size: carrier.length };
    await w.putBlob(Readable.from([carrier]), cdesc);
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, artifactType: MediaType.blockImage, manifests: [mdesc, { ...cdesc, artifactType: MediaType.blockCarrier }] }));
    const top = { mediaType: MediaType.ociIndex, digest: sha256(index), size: index.length };
    await w.putBlob(Readable.from([index]), top);
    await w.commit(top);
    return { w, top, manifest: mdesc, carrier: cdesc, layer: stored };
  }

  it('pushes blobs, then children, then the tag; reads the image back verified', async () => {
    const layer = bytes(50_000, 5);
    const r = await push(`docker://${reg.host}/app:1`, layer, [bytes(30_000, 6), bytes(20_000, 7)]);
    assert.equal(r.w.stats.uploaded, 4); // layer, config, two blocks
    assert.equal(r.w.stats.manifests, 3);
    const order = reg.log.filter((l) => l.startsWith('PUT /v2/app/manifests/'));
    assert.deepEqual(order, ['PUT /v2/app/manifests/1.blockport-0', 'PUT /v2/app/manifests/1.blockport-1', 'PUT /v2/app/manifests/1']);
    assert.equal(reg.count('HEAD /v2/app/blobs/' + r.top.digest), 0, 'manifests are never looked for among blobs');

    const img = await openRemoteImage(`docker://${reg.host}/app:1`, opts);
    assert.equal(img.manifestDescriptor.digest, r.manifest.digest);
    const got = Buffer.concat(await (await img.openBlob({ mediaType: MediaType.ociLayer, digest: r.layer.digest, size: r.layer.size })).toArray());
    assert.deepEqual(got, layer);
    const byDigest = await openRemoteImage(`docker://${reg.host}/app@${r.top.digest}`, opts);
    assert.equal(byDigest.config.rootfs.diff_ids[0], r.layer.digest);
  });

  it('a second image sharing blobs uploads only the new ones', async () => {
    const r = await push(`docker://${reg.host}/app:2`, bytes(50_000, 5), [bytes(30_000, 6), bytes(20_000, 8)]);
    // same layer and config, one block kept, one new: only the new block travels
    assert.equal(r.w.stats.uploaded, 1);
    assert.equal(r.w.stats.uploadedBytes, 20_000);
    assert.equal(r.w.stats.skipped, 3);
  });

  it('names a missing image ENOTFOUND', async () => {
    await assert.rejects(openRemoteImage(`docker://${reg.host}/app:nope`, opts), isCode('ENOTFOUND'));
  });

  it('refuses a manifest whose digest is not the one asked for', async () => {
    const fake = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }));
    const d: Digest = sha256('another manifest');
    reg.manifests.set(`app:${d}`, { bytes: fake, type: MediaType.ociIndex });
    await assert.rejects(openRemoteImage(`docker://${reg.host}/app@${d}`, opts), isCode('EDIGEST'));
  });
});
