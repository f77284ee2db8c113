/**
 * `blockport serve` against real clients: skopeo copies and inspects a block-form image from it
 * and gets the standard image (the config and diff_ids of the original, the manifest materialize
 * writes); the read API answers HEAD, ranges and errors as the distribution spec says; an
 * upgraded image makes skopeo fetch only its changed layer; podman pulls (and runs) it; SIGTERM
 * stops it cleanly with a summary.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { materializeToWriter } from '../src/blocks/materialize.js';
import { openImage, openWriter } from '../src/index.js';
import { bpOk } from './bundle-helpers.js';
import { blobGets, settled, startServe, type Served } from './serve-helpers.js';
import { gnuTarLayer, javaLikeTree, makeTree, readImage, run, skopeoCopy, tempDir, umociImage, type FsNode } from './fixtures/images.js';

const GREETING = 'hello from a served image';
let t: { dir: string; cleanup(): Promise<void> };
let home: string;
let oci: string;
let server: Served;
let hello: string | undefined;
const at = (n: string) => join(t.dir, n);

const appTree = (v: number): FsNode[] => [
  { path: 'app/app.jar', type: 'file', content: { size: 300_000, seed: 700 + v } },
  { path: 'app/version', type: 'file', content: `${v}\n` },
];

async function buildHello(): Promise<string | undefined> {
  try {
    await run('sh', ['-c', `printf '#include <stdio.h>\\nint main(void){puts("${GREETING}");return 0;}\\n' > ${at('hello.c')}`]);
    await run('gcc', ['-static', '-O2', at('hello.c'), '-o', at('hello')]);
    return at('hello');
  } catch {
    return undefined;
  }
}

before(async () => {
  t = await tempDir('serve');
  hello = await buildHello();
  const trees: Record<string, FsNode[]> = {
    base: [{ path: 'etc/os-release', type: 'file', content: 'ID=fixture\n' }],
    jars: javaLikeTree({ jars: 6, seed: 9, minSize: 150_000, maxSize: 400_000 }),
    app1: appTree(1),
    app2: appTree(2),
  };
  for (const [name, nodes] of Object.entries(trees)) {
    await makeTree(at(name), nodes);
    if (name === 'base' && hello) await run('cp', [hello, join(at(name), 'hello')]);
    await gnuTarLayer(at(name), at(`${name}.tar`));
  }
  oci = at('oci');
  await umociImage(oci, '1', [at('base.tar'), at('jars.tar'), at('app1.tar')], { cmd: ['/hello'] });
  await umociImage(oci, '2', [at('base.tar'), at('jars.tar'), at('app2.tar')], { cmd: ['/hello'] });
  home = at('store');
  await bpOk(home, ['blockify', `oci:${oci}:1`, 'team/app:1', '--preset', 'java']);
  await bpOk(home, ['materialize', 'team/app:1', 'team/app:std', '--compress', 'gzip']);
  server = await startServe(home, ['--cache', at('cache')]);
});
after(async () => {
  await server?.stop('SIGKILL');
  await t.cleanup();
});

/** Runs `fn` with BLOCKPORT_HOME set to the test store (library calls read the store from the environment). */
async function withStore<T>(fn: () => Promise<T>): Promise<T> {
  const old = process.env.BLOCKPORT_HOME;
  process.env.BLOCKPORT_HOME = home;
  try {
    return await fn();
  } finally {
    if (old === undefined) delete process.env.BLOCKPORT_HOME;
    else process.env.BLOCKPORT_HOME = old;
  }
}

const get = (path: string, init: RequestInit = {}) => fetch(`${server.url}${path}`, init);
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('skopeo copies a block-form image from serve as its standard image: same config, same diff_ids, the manifest materialize writes', async () => {
  const out = at('pulled');
  await skopeoCopy(`docker://${server.addr}/team/app:1`, `oci:${out}:1`);
  const original = await readImage(oci, '1');
  const pulled = await readImage(out, '1');
  assert.equal(pulled.manifest.config.digest, original.manifest.config.digest, 'image ID unchanged');
  assert.deepEqual(pulled.config.rootfs.diff_ids, original.config.rootfs.diff_ids);
  // every layer blob skopeo stored is what its descriptor says (skopeo checks; check again)
  for (const l of pulled.manifest.layers) assert.equal(sha(await readFile(join(out, 'blobs', 'sha256', l.digest.slice(7)))), l.digest);
  // the manifest materialize writes by default (spliced layers uncompressed, the others as stored)
  const materialized = at('materialized');
  const reader = await withStore(() => openImage('team/app:1'));
  const result = await materializeToWriter(reader, await openWriter(`oci:${materialized}:1`));
  await reader.close();
  const served = await fetch(`${server.url}/v2/team/app/manifests/1`);
  assert.equal(served.headers.get('docker-content-digest'), result.manifest!.digest, 'served manifest = materialized manifest');
  const servedManifest = (await served.json()) as { layers: { digest: string }[] };

  const inspect = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${server.addr}/team/app:1`])).stdout);
  assert.equal(inspect.Digest, result.manifest!.digest);
  assert.deepEqual(inspect.Layers, servedManifest.layers.map((l) => l.digest));
  assert.deepEqual(inspect.RepoTags.sort(), ['1', 'std']);
});

test('a standard store image is served as stored', async () => {
  const res = await get('/v2/team/app/manifests/std', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200);
  const body = Buffer.from(await res.arrayBuffer());
  const stored = JSON.parse(await readFile(join(home, 'index.json'), 'utf8')).manifests.find((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'] === 'team/app:std');
  assert.equal(res.headers.get('docker-content-digest'), stored.digest);
  assert.equal(sha(body), stored.digest);
});

test('the read API: /v2/, HEAD, ranges, tags and catalog pagination, errors in the spec format', async () => {
  const v2 = await get('/v2/');
  assert.equal(v2.status, 200);
  assert.equal(v2.headers.get('docker-distribution-api-version'), 'registry/2.0');

  const head = await get('/v2/team/app/manifests/1', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
  const digest = head.headers.get('docker-content-digest')!;
  const manifestBytes = Buffer.from(await (await get(`/v2/team/app/manifests/${digest}`)).arrayBuffer());
  assert.equal(sha(manifestBytes), digest);
  assert.equal(Number(head.headers.get('content-length')), manifestBytes.length);
  const manifest = JSON.parse(manifestBytes.toString());
  const spliced = manifest.layers[2]; // the app layer: in block form in the store
  assert.equal(spliced.mediaType, 'application/vnd.oci.image.layer.v1.tar');

  const blobHead = await get(`/v2/team/app/blobs/${spliced.digest}`, { method: 'HEAD' });
  assert.equal(blobHead.status, 200);
  assert.equal(Number(blobHead.headers.get('content-length')), spliced.size);
  assert.equal(blobHead.headers.get('docker-content-digest'), spliced.digest);

  const whole = Buffer.from(await (await get(`/v2/team/app/blobs/${spliced.digest}`)).arrayBuffer());
  assert.equal(sha(whole), spliced.digest);
  const part = await get(`/v2/team/app/blobs/${spliced.digest}`, { headers: { Range: 'bytes=1000-4999' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 1000-4999/${spliced.size}`);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), whole.subarray(1000, 5000));
  const suffix = await get(`/v2/team/app/blobs/${spliced.digest}`, { headers: { Range: 'bytes=-1024' } });
  assert.equal(suffix.status, 206);
  assert.deepEqual(Buffer.from(await suffix.arrayBuffer()), whole.subarray(whole.length - 1024));
  const bad = await get(`/v2/team/app/blobs/${spliced.digest}`, { headers: { Range: `bytes=${spliced.size}-` } });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers.get('content-range'), `bytes */${spliced.size}`);

  const tags = await (await get('/v2/team/app/tags/list?n=1')).json();
  assert.deepEqual(tags, { name: 'team/app', tags: ['1'] });
  const page = await get('/v2/team/app/tags/list?n=1');
  assert.equal(page.headers.get('link'), '</v2/team/app/tags/list?n=1&last=1>; rel="next"');
  assert.deepEqual(await (await get('/v2/team/app/tags/list?n=1&last=1')).json(), { name: 'team/app', tags: ['std'] });
  assert.deepEqual(await (await get('/v2/_catalog')).json(), { repositories: ['team/app'] });

  const errorOf = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { errors: { code: string }[] }).errors[0].code });
  assert.deepEqual(await errorOf(await get('/v2/team/app/manifests/9')), { status: 404, code: 'MANIFEST_UNKNOWN' });
  assert.deepEqual(await errorOf(await get('/v2/other/manifests/1')), { status: 404, code: 'NAME_UNKNOWN' });
  assert.deepEqual(await errorOf(await get(`/v2/team/app/blobs/sha256:${'0'.repeat(64)}`)), { status: 404, code: 'BLOB_UNKNOWN' });
  assert.deepEqual(await errorOf(await get('/v2/team/app/blobs/sha256:nothex')), { status: 400, code: 'DIGEST_INVALID' });
  assert.deepEqual(await errorOf(await get('/v2/team/app/blobs/uploads/', { method: 'POST' })), { status: 405, code: 'UNSUPPORTED' });
  assert.deepEqual(await errorOf(await get('/v2/team/app/manifests/1', { method: 'PUT', body: '{}' })), { status: 405, code: 'UNSUPPORTED' });
  // the block-form index the store tags is not served: clients only ever see the standard image
  const storeIndex = JSON.parse(await readFile(join(home, 'index.json'), 'utf8')).manifests.find((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'] === 'team/app:1');
  assert.equal((await get(`/v2/team/app/manifests/${storeIndex.digest}`)).status, 404);
});

test('concurrent first requests of a layer splice it once; the cache then holds it, verified', async () => {
  const cache = at('cache-c');
  const s = await startServe(home, ['--cache', cache, '--json']);
  const manifest = (await (await fetch(`${s.url}/v2/team/app/manifests/1`)).json()) as { layers: { digest: string; size: number }[] };
  const jars = manifest.layers[1];
  const bodies = await Promise.all(Array.from({ length: 5 }, async () => Buffer.from(await (await fetch(`${s.url}/v2/team/app/blobs/${jars.digest}`)).arrayBuffer())));
  for (const b of bodies) assert.equal(sha(b), jars.digest);
  const { code, stdout } = await s.stop('SIGTERM');
  assert.equal(code, 0);
  const summary = JSON.parse(stdout);
  assert.deepEqual(summary.spliced, { layers: 1, bytes: jars.size }, 'one splice for five requests');
  assert.deepEqual(summary.moved, { blobs: 5, bytes: 5 * jars.size });
  const cached = await readdir(join(cache, 'sha256'));
  assert.deepEqual(cached, [jars.digest.slice(7)], 'the cache file, no temp file');
  assert.equal(sha(await readFile(join(cache, 'sha256', jars.digest.slice(7)))), jars.digest);
});

test('after an upgrade in the store, a second skopeo copy fetches only the changed layer and the config', async () => {
  // skopeo's oci: destination gzips uncompressed layers unless told not to, and then cannot match them by digest again
  const keep = ['--dest-oci-accept-uncompressed-layers'];
  const out = at('pulled-up');
  await skopeoCopy(`docker://${server.addr}/team/app:1`, `oci:${out}:1`, keep);
  await bpOk(home, ['blockify', `oci:${oci}:2`, 'team/app:2', '--preset', 'java']);
  await settled(server.log);
  const from = server.log.length;
  await skopeoCopy(`docker://${server.addr}/team/app:2`, `oci:${out}:2`, keep);
  await settled(server.log);
  const v1 = await readImage(out, '1');
  const v2 = await readImage(out, '2');
  const original = await readImage(oci, '2');
  assert.deepEqual(v2.config.rootfs.diff_ids, original.config.rootfs.diff_ids);
  assert.equal(v2.manifest.layers[1].digest, v1.manifest.layers[1].digest, 'the unchanged block-form layer keeps its digest');
  assert.deepEqual(blobGets(server.log, from).sort(), [v2.manifest.config.digest, v2.manifest.layers[2].digest].sort());
});

test('podman pulls from serve and runs the image', async (ctx) => {
  const conf = at('podman');
  await makeTree(conf, [{ path: 'storage.conf', type: 'file', content: `[storage]\ndriver = "vfs"\ngraphroot = "${conf}/root"\nrunroot = "${conf}/run"\n` }]);
  const env = { ...process.env, CONTAINERS_STORAGE_CONF: join(conf, 'storage.conf'), XDG_RUNTIME_DIR: join(conf, 'xdg') };
  const podman = (args: string[]) => run('podman', ['--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', 'runc', ...args], { env });
  try {
    await run('podman', ['--version']);
  } catch {
    return ctx.skip('podman is not installed');
  }
  const ref = `${server.addr}/team/app:1`;
  await podman(['pull', '--quiet', '--tls-verify=false', ref]);
  const images = JSON.parse((await podman(['images', '--format', 'json'])).stdout) as { Id: string }[];
  const config = (await readImage(oci, '1')).manifest.config.digest.slice(7);
  assert.ok(images.some((i) => i.Id === config), `podman holds image ${config}`);
  // podman keeps layers by diff_id: pulling the upgrade fetches only the changed layer and the config
  await settled(server.log);
  const from = server.log.length;
  await podman(['pull', '--quiet', '--tls-verify=false', `${server.addr}/team/app:2`]);
  await settled(server.log);
  const v2 = (await (await get('/v2/team/app/manifests/2')).json()) as { config: { digest: string }; layers: { digest: string }[] };
  assert.deepEqual(blobGets(server.log, from).sort(), [v2.config.digest, v2.layers[2].digest].sort());
  if (!hello) return ctx.skip('no static C toolchain to build a runnable program');
  try {
    const { stdout } = await podman(['run', '--rm', '--network', 'none', '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', ref]);
    assert.equal(stdout.trim(), GREETING);
  } catch (err) {
    if (/runc|cgroup|setrlimit|OCI runtime/.test((err as Error).message)) return ctx.skip(`this machine cannot run containers: ${(err as Error).message.slice(-200)}`);
    throw err;
  }
});

/** A containerd of the test's own (root, state and socket in `dir`), or undefined where it is not installed. */
async function startContainerd(dir: string): Promise<{ sock: string; stop(): Promise<void> } | undefined> {
  try {
    await run('containerd', ['--version']);
    await run('ctr', ['--version']);
  } catch {
    return undefined;
  }
  const sock = join(dir, 'c.sock');
  const config = join(dir, 'config.toml');
  await makeTree(dir, []);
  await writeFile(config, `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n`);
  const child = spawn('containerd', ['-c', config], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  for (let i = 0; i < 100 && !(await stat(sock).catch(() => undefined)); i++) await new Promise((r) => setTimeout(r, 100));
  return {
    sock,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

test('containerd (ctr pull --plain-http) pulls from serve; the upgrade fetches only the changed layer and the config', async (ctx) => {
  const ctd = await startContainerd(at('containerd'));
  if (!ctd) return ctx.skip('containerd is not installed');
  try {
    const ctr = (args: string[]) => run('ctr', ['--address', ctd.sock, ...args]);
    await ctr(['images', 'pull', '--plain-http', `${server.addr}/team/app:1`]);
    const listed = (await ctr(['images', 'ls', '-q'])).stdout;
    assert.match(listed, new RegExp(`${server.addr}/team/app:1`));
    await settled(server.log);
    const from = server.log.length;
    await ctr(['images', 'pull', '--plain-http', `${server.addr}/team/app:2`]);
    await settled(server.log);
    const v2 = (await (await get('/v2/team/app/manifests/2')).json()) as { config: { digest: string }; layers: { digest: string }[] };
    assert.deepEqual(blobGets(server.log, from).sort(), [v2.config.digest, v2.layers[2].digest].sort());
  } finally {
    await ctd.stop();
  }
});

test('SIGTERM stops serve: exit 0, a summary of what moved against a plain copy, no temp files', async () => {
  const s = await startServe(home, ['--cache', at('cache-2'), '--json']);
  const out = at('pulled-2');
  await skopeoCopy(`docker://${s.addr}/team/app:2`, `oci:${out}:2`);
  const { code, stdout } = await s.stop('SIGTERM');
  assert.equal(code, 0);
  const summary = JSON.parse(stdout);
  const v2 = await readImage(out, '2');
  assert.equal(summary.plainCopy.blobs, v2.manifest.layers.length + 1);
  assert.deepEqual(summary.moved, summary.plainCopy, 'an empty destination fetches everything');
  assert.equal(summary.spliced.layers, 2, 'the two block-form layers, spliced once each');
  const left = await readdir(join(at('cache-2'), 'sha256'));
  assert.equal(left.filter((n) => n.includes('.tmp-')).length, 0);
});
