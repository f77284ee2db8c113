/**
 * The team workflow through a real registry (distribution's `docker-registry` on 127.0.0.1): the
 * vendor pushes block-form images, another team pulls them into its store, copies made by
 * skopeo keep every blob, garbage-collect keeps them, and plain clients (podman, skopeo inspect)
 * are refused before they store anything. Pulls survive dropped connections and kills.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { openImage } from '../src/index.js';
import { pullImage } from '../src/registry/pull.js';
import type { RemoteImageReader } from '../src/registry/remote-image.js';
import { blockport, CLI, ok } from './cli.js';
import { startFaultProxy } from './fixtures/fault-proxy.js';
import { gnuTarLayer, javaLikeTree, makeTree, readImage, run, skopeoCopy, tempDir, umociImage } from './fixtures/images.js';
import { getJson, htpasswdLine, startRegistry, type Json, type LocalRegistry } from './fixtures/registry.js';

/** Every file below `dir` (relative paths), for "the store is unchanged" checks. */
async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  await walk(dir, '');
  return out.sort();
}

/** An http server on 127.0.0.1 answering every request with `answer`. */
async function fakeRegistry(answer: (url: string, res: import('node:http').ServerResponse) => void): Promise<{ host: string; stop(): Promise<void> }> {
  const server: Server = createServer((req, res) => (req.url === '/v2/' ? res.writeHead(200).end('{}') : answer(req.url!, res)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(server.address() as { port: number }).port}`,
    stop: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const oneLine = (stderr: string) => assert.equal(stderr.trim().split('\n').length, 1, stderr);

describe('the team workflow through a registry', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let reg: LocalRegistry;
  let vendor: NodeJS.ProcessEnv;
  let diffIds: string[];
  const home = (name: string) => join(t.dir, `home-${name}`);
  const envFor = (name: string): NodeJS.ProcessEnv => ({ ...vendor, BLOCKPORT_HOME: home(name) });

  before(async () => {
    t = await tempDir('workflow');
    await mkdir(join(t.dir, 'docker-config'));
    vendor = { BLOCKPORT_HOME: home('vendor'), DOCKER_CONFIG: join(t.dir, 'docker-config'), BLOCKPORT_REGISTRY_AUTH: '', REGISTRY_AUTH_FILE: '', XDG_RUNTIME_DIR: '' };
    const layer = async (name: string, nodes: Parameters<typeof makeTree>[1]) => {
      await makeTree(join(t.dir, `tree-${name}`), nodes);
      await gnuTarLayer(join(t.dir, `tree-${name}`), join(t.dir, `${name}.tar`));
      return join(t.dir, `${name}.tar`);
    };
    const java1 = await layer('java1', javaLikeTree({ jars: 10, seed: 7, minSize: 100_000, maxSize: 300_000 }));
    const java2 = await layer('java2', javaLikeTree({ jars: 10, seed: 7, minSize: 100_000, maxSize: 300_000, changed: [4] }));
    const etc = await layer('etc', [{ path: 'etc/app.conf', type: 'file', content: 'mode=prod\n' }]);
    const src = join(t.dir, 'src');
    await umociImage(src, '1', [java1, etc], { cmd: ['/bin/sh'] });
    await umociImage(src, '2', [java2, etc], { cmd: ['/bin/sh'] });
    diffIds = (await readImage(src, '1')).config.rootfs.diff_ids;
    // docker-archive layers are uncompressed: the unchanged standard layer stays so in block form,
    // which is what made copiers gzip it and rewrite the manifest before
    for (const v of ['1', '2']) {
      await skopeoCopy(`oci:${src}:${v}`, `docker-archive:${join(t.dir, `app-${v}.tar`)}:app:${v}`);
      await ok(['blockify', `docker-archive:${join(t.dir, `app-${v}.tar`)}`, `app:${v}`, '--preset', 'java'], vendor);
    }
    reg = await startRegistry(join(t.dir, 'registry'));
  });
  after(async () => {
    await reg?.stop();
    await t?.cleanup();
  });

  it('push sends every blob once, then only what the next version adds', async () => {
    const first = JSON.parse((await ok(['push', 'app:1', `docker://${reg.host}/vendor/app:1`, '--json'], vendor)).stdout);
    assert.equal(first.stats.present.blobs, 0);
    assert.equal(first.stats.moved.blobs, first.stats.total.blobs);
    const second = JSON.parse((await ok(['push', 'app:2', `docker://${reg.host}/vendor/app:2`, '--json'], vendor)).stdout);
    // the changed jar's block, the layer importing it, the config, the block-form manifest, the
    // vendor's manifest (a source blob, docs/spec.md 17.1), the top
    assert.equal(second.stats.moved.blobs, 6, JSON.stringify(second.stats));
    assert.ok(second.stats.moved.bytes * 3 < second.stats.standard.bytes, `push moved ${second.stats.moved.bytes} bytes; skopeo copy of the standard image ${second.stats.standard.bytes}`);
    assert.deepEqual((await getJson(reg.host, '/v2/vendor/app/tags/list')).tags.sort(), ['1', '2']);
    const text = (await ok(['push', 'app:2', `docker://${reg.host}/vendor/app:2`], vendor)).stdout;
    assert.match(text, /moved\s+1 blob, .*\n.*\npresent\s+\d+ blobs/, text);
    assert.match(text, /skopeo copy of the standard image would move/);
    // another team's repository on the same registry: every blob is mounted, none sent
    const mounted = JSON.parse((await ok(['push', 'app:2', `docker://${reg.host}/team-b/app:2`, '--mount-from', 'vendor/app', '--json'], vendor)).stdout);
    assert.equal(mounted.mounted, mounted.stats.total.blobs - 1, 'all but the top manifest mounted');
    assert.equal(mounted.uploaded.blobs, 1);
  });

  it('podman pull and skopeo inspect of a block-form tag fail before storing anything', async () => {
    const root = join(t.dir, 'podman');
    const podman = ['--root', join(root, 'root'), '--runroot', join(root, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'];
    const pulled = await run('podman', [...podman, 'pull', '--tls-verify=false', `${reg.host}/vendor/app:1`]).then(() => 'pulled', (e: Error) => e.message);
    assert.match(pulled, /unsupported image-specific operation on artifact with type .*application\/vnd\.blockport\.manifest\.v1\+json/);
    assert.equal((await run('podman', [...podman, 'images', '-q'])).stdout.trim(), '', 'podman stored no image');
    assert.deepEqual((await readdir(join(root, 'root', 'vfs-layers')).catch(() => [])).filter((f) => !f.endsWith('.lock')), [], 'podman stored no layer');
    const inspected = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/vendor/app:1`]).then(() => 'inspected', (e: Error) => e.message);
    assert.match(inspected, /artifact with type .*application\/vnd\.blockport\.manifest\.v1\+json/);
  });

  it('skopeo copies keep the digest and every blob, also through garbage-collect --delete-untagged; pull of a copy materializes', async () => {
    const digest = async (repo: string) => (await fetch(`http://${reg.host}/v2/${repo}/manifests/1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).headers.get('docker-content-digest');
    const want = await digest('vendor/app');
    const copies: Record<string, string[]> = { 'copy/all': ['--all'], 'copy/plain': [], 'copy/preserve': ['--all', '--preserve-digests'] };
    for (const [repo, extra] of Object.entries(copies)) {
      await skopeoCopy(`docker://${reg.host}/vendor/app:1`, `docker://${reg.host}/${repo}:1`, extra);
      assert.equal(await digest(repo), want, `skopeo copy ${extra.join(' ')} kept the digest`);
    }
    // a copy made by blockport itself, registry to registry: the same digest, blobs mounted
    const copied = JSON.parse((await ok(['copy', `docker://${reg.host}/vendor/app:1`, `docker://${reg.host}/copy/blockport:1`, '--json'], vendor)).stdout);
    assert.equal(copied.top.digest, want);
    assert.ok(copied.mounted >= 1, 'blobs were mounted from vendor/app');
    const gc = await run('docker-registry', ['garbage-collect', '--delete-untagged', reg.config]);
    assert.doesNotMatch(gc.stdout, /blob eligible for deletion/, 'no blob of a tagged image is collected');
    for (const repo of [...Object.keys(copies), 'copy/blockport']) {
      const name = repo.replace('/', '-');
      await ok(['pull', `docker://${reg.host}/${repo}:1`, 'app:1'], envFor(name));
      const out = join(t.dir, `${name}.tar`);
      await ok(['materialize', 'app:1', `docker-archive:${out}:app:1`], envFor(name));
      assert.deepEqual(JSON.parse((await run('skopeo', ['inspect', `docker-archive:${out}`])).stdout).Layers, diffIds, repo);
    }
  });

  it('pull over a store holding v1 fetches only the blobs v2 adds', async () => {
    const team = envFor('team');
    await ok(['pull', `docker://${reg.host}/vendor/app:1`, 'app:1'], team);
    const r = JSON.parse((await ok(['pull', `docker://${reg.host}/vendor/app:2`, 'app:2', '--json'], team)).stdout);
    // as push moved them: the vendor's manifest is the sixth
    assert.equal(r.stats.moved.blobs, 6, JSON.stringify(r.stats));
    assert.ok(r.stats.present.blobs >= 10);
    assert.ok(r.stats.moved.bytes * 3 < r.stats.standard.bytes);
    const fsck = await ok(['fsck'], team);
    assert.match(fsck.stdout, /store is consistent/);
    console.log(`# pull v2 over v1: ${r.stats.moved.blobs} blobs, ${r.stats.moved.bytes} bytes; a plain skopeo copy of the standard image: ${r.stats.standard.blobs} blobs, ${r.stats.standard.bytes} bytes`);
  });

  it('a pull killed half-way continues when run again; nothing unverified is ever in blobs/', async () => {
    const slow = await startFaultProxy(reg.host, { delayMs: 15 });
    const env = envFor('killed');
    try {
      const child = spawn(process.execPath, [CLI, 'pull', `docker://${slow.host}/vendor/app:1`, 'app:1'], { env: { ...process.env, ...env }, stdio: 'ignore' });
      const staging = join(home('killed'), 'staging');
      const verified = async () => (await listing(staging)).filter((f) => /\/[0-9a-f]{64}$/.test(f)).length;
      for (let i = 0; i < 400 && (await verified()) < 2 && child.exitCode === null; i++) await sleep(25);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
      assert.ok((await verified()) >= 2, 'the killed pull had verified some blobs');
      assert.deepEqual(await listing(join(home('killed'), 'blobs')), [], 'nothing entered blobs/ before the pull finished');
    } finally {
      await slow.stop();
    }
    const r = JSON.parse((await ok(['pull', `docker://${reg.host}/vendor/app:1`, 'app:1', '--json'], env)).stdout);
    assert.ok(r.resumed.blobs >= 2, JSON.stringify(r.resumed));
    assert.equal(r.resumed.blobs + r.stats.moved.blobs, r.stats.total.blobs);
    assert.match((await ok(['fsck'], env)).stdout, /store is consistent/);
    await ok(['materialize', 'app:1', `docker-archive:${join(t.dir, 'killed.tar')}`], env);
  });

  it('dropped connections are retried and blob downloads resumed with Range requests', async () => {
    const faulty = await startFaultProxy(reg.host, { afterBytes: 150_000, cuts: 6 });
    const store = home('faults');
    try {
      const reader = (await openImage(`docker://${faulty.host}/vendor/app:2`)) as RemoteImageReader;
      const r = await pullImage(reader, store, 'app:2', { concurrency: 2 });
      assert.ok(faulty.cut() >= 1, 'the proxy cut connections');
      assert.ok(faulty.ranges() >= 1 && reader.repo.resumes >= 1, `resumed ${reader.repo.resumes} times`);
      assert.equal(r.stats.moved.blobs, r.stats.total.blobs);
    } finally {
      await faulty.stop();
    }
    assert.match((await ok(['fsck'], { ...vendor, BLOCKPORT_HOME: store })).stdout, /store is consistent/);
  });

  it('bad answers are one-line errors with their exit code, and the store is unchanged', async () => {
    const env = envFor('bad');
    await ok(['pull', `docker://${reg.host}/vendor/app:1`, 'app:1'], env);
    const before = await listing(home('bad'));
    const refused = async (args: string[], code: number, pattern: RegExp, extra: NodeJS.ProcessEnv = {}) => {
      const r = await blockport(args, { ...env, ...extra });
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      oneLine(r.stderr);
      assert.deepEqual(await listing(home('bad')), before, `${args.join(' ')} left the store as it was`);
    };
    await refused(['pull', `docker://${reg.host}/vendor/app:nope`, 'app:9'], 3, new RegExp(`${reg.host}/vendor/app:nope: no such image in the registry \\(404\\)`));
    // a standard image where a block-form one is needed
    await skopeoCopy(`oci:${join(t.dir, 'src')}:1`, `docker://${reg.host}/std/app:1`);
    await refused(['pull', `docker://${reg.host}/std/app:1`, 'app:9'], 9, /is not a block-form image/);
    await refused(['push', `docker://${reg.host}/std/app:1`, `docker://${reg.host}/std/again:1`], 9, /is not a block-form image/);
    // a block whose bytes in the registry's storage no longer match its digest
    await ok(['pull', `docker://${reg.host}/vendor/app:2`, 'app:2'], envFor('bad-ref'));
    const top = await getJson(reg.host, '/v2/vendor/app/manifests/2');
    const bf = await getJson(reg.host, `/v2/vendor/app/blobs/${top.config.digest}`);
    const present = new Set((await listing(join(home('bad'), 'blobs'))).map((f) => `sha256:${f.split('/').pop()}`));
    const fresh = (bf.blocks as Json[]).find((b) => !present.has(b.digest))!;
    const hex = fresh.digest.slice(7);
    const file = join(t.dir, 'registry', 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    const bytes = await readFile(file);
    bytes[100] ^= 0xff;
    await writeFile(file, bytes);
    await refused(['pull', `docker://${reg.host}/vendor/app:2`, 'app:2'], 4, new RegExp(`${fresh.digest}.*(digest|does not match)`));
    bytes[100] ^= 0xff;
    await writeFile(file, bytes);
    // a registry answering 500 to everything, and one sending a manifest over 4 MiB
    const broken = await fakeRegistry((_, res) => res.writeHead(500).end());
    const huge = await fakeRegistry((_, res) => res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(5 << 20) }).end(Buffer.alloc(5 << 20, 0x20)));
    try {
      await refused(['pull', `docker://${broken.host}/team/app:1`, 'app:9'], 1, new RegExp(`${broken.host}/team/app:1: .*500`));
      await refused(['pull', `docker://${huge.host}/team/app:1`, 'app:9'], 4, new RegExp(`${huge.host}/team/app:1: manifest of \\d+ bytes refused`));
    } finally {
      await broken.stop();
      await huge.stop();
    }
    assert.ok((await stat(join(home('bad'), 'index.json'))).isFile());
  });

  it('a registry with basic auth: --creds, auth files and credential helpers; wrong credentials are refused in one line', async (ctx) => {
    const line = await htpasswdLine('alice', 'wonderland');
    if (!line) return ctx.skip('no htpasswd (apt: apache2-utils)');
    const dir = join(t.dir, 'auth-registry');
    await mkdir(dir);
    await writeFile(join(dir, 'htpasswd'), `${line}\n`);
    const secured = await startRegistry(dir, join(dir, 'htpasswd'));
    try {
      const dst = `docker://${secured.host}/team/app:1`;
      const wrong = await blockport(['push', 'app:1', dst, '--creds', 'alice:nope'], vendor);
      assert.equal(wrong.code, 1, wrong.stderr);
      assert.match(wrong.stderr, new RegExp(`^blockport: ${secured.host}/team/app:1: unauthorized \\(401\\): the registry refused the credentials`));
      oneLine(wrong.stderr);
      await ok(['push', 'app:1', dst, '--creds', 'alice:wonderland'], vendor);
      // podman's auth file, then a docker credential helper found on PATH
      const authFile = join(dir, 'auth.json');
      await writeFile(authFile, JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from('alice:wonderland').toString('base64') } } }));
      await ok(['pull', dst, 'app:1'], { ...envFor('auth-file'), REGISTRY_AUTH_FILE: authFile });
      const bin = join(dir, 'bin');
      await mkdir(bin);
      await writeFile(join(bin, 'docker-credential-fake'), `#!/bin/sh\nread host\n[ "$host" = "${secured.host}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '{"ServerURL":"'"$host"'","Username":"alice","Secret":"wonderland"}'\n`, { mode: 0o755 });
      const docker = join(dir, 'docker');
      await mkdir(docker);
      await writeFile(join(docker, 'config.json'), JSON.stringify({ credHelpers: { [secured.host]: 'fake' } }));
      await ok(['pull', dst, 'app:1'], { ...envFor('helper'), DOCKER_CONFIG: docker, PATH: `${bin}:${process.env.PATH}` });
      const missing = await blockport(['pull', dst, 'app:1'], { ...envFor('no-helper'), DOCKER_CONFIG: docker });
      assert.equal(missing.code, 11, missing.stderr);
      assert.match(missing.stderr, /docker-credential-fake .*is not installed/);
    } finally {
      await secured.stop();
    }
  });
});
