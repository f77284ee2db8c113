/**
 * Block-form images through a real registry (distribution 2.8, `docker-registry`, on 127.0.0.1
 * only): blockify straight into it, materialize back out, share blocks between images, survive the
 * registry's garbage collector, copy with skopeo, and refuse to run by mistake.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blockify } from '../src/blocks/blockify.js';
import { rulesFor } from '../src/blocks/rules.js';
import { openImage, openWriter } from '../src/index.js';
import { RegistryClient } from '../src/registry/client.js';
import type { RemoteImageWriter } from '../src/registry/remote-image.js';
import { Repository } from '../src/registry/repository.js';
import { uploadBlob } from '../src/registry/upload.js';
import { sha256 } from '../src/digest/digest.js';
import { blockport, ok } from './cli.js';
import { getJson, htpasswdLine, startRegistry, type Json, type LocalRegistry } from './fixtures/registry.js';
import { gnuTarLayer, javaLikeTree, makeTree, nodeModulesTree, readImage, run, skopeoCopy, tempDir, umociImage } from './fixtures/images.js';

describe('block-form images through a registry', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let reg: LocalRegistry;
  let src: string;
  let env: NodeJS.ProcessEnv;
  let original: Awaited<ReturnType<typeof readImage>>;
  const firstPush = { bytes: 0, blobs: 0 };

  before(async () => {
    t = await tempDir('registry');
    await mkdir(join(t.dir, 'docker-config'));
    env = { BLOCKPORT_HOME: join(t.dir, 'home'), DOCKER_CONFIG: join(t.dir, 'docker-config'), BLOCKPORT_REGISTRY_AUTH: '' };
    const layer = async (name: string, nodes: Parameters<typeof makeTree>[1], format: 'posix' | 'gnu' = 'posix') => {
      await makeTree(join(t.dir, `tree-${name}`), nodes);
      await gnuTarLayer(join(t.dir, `tree-${name}`), join(t.dir, `${name}.tar`), { format });
      return join(t.dir, `${name}.tar`);
    };
    const java1 = await layer('java1', javaLikeTree({ jars: 10, seed: 1, minSize: 100_000, maxSize: 400_000 }));
    const java2 = await layer('java2', javaLikeTree({ jars: 10, seed: 1, minSize: 100_000, maxSize: 400_000, changed: [3] }));
    const node = await layer('node', nodeModulesTree({ packages: 4, seed: 2 }), 'gnu');
    const etc = await layer('etc', [{ path: 'etc/app.conf', type: 'file', content: 'mode=prod\n' }]);
    src = join(t.dir, 'src');
    await umociImage(src, '1', [java1, node, etc], { cmd: ['/bin/sh'] });
    await umociImage(src, '2', [java2, node, etc], { cmd: ['/bin/sh'] });
    original = await readImage(src, '1');
    reg = await startRegistry(join(t.dir, 'registry'));
  });
  after(async () => {
    await reg?.stop();
    await t.cleanup();
  });

  it('blockifies straight into the registry and materializes back out, byte for byte', async () => {
    const r = JSON.parse((await ok(['blockify', `oci:${src}:1`, `docker://${reg.host}/app:1`, '--preset', 'java', '--preset', 'node', '--json'], env)).stdout);
    assert.equal(r.blocks.length, 14);
    const tags = (await getJson(reg.host, '/v2/app/tags/list')).tags as string[];
    // one tag, one manifest: the transport manifest lists every blob, so nothing else needs a tag
    assert.deepEqual(tags, ['1']);
    const top = await getJson(reg.host, '/v2/app/manifests/1');
    assert.equal(top.artifactType, 'application/vnd.blockport.image.v1');
    assert.equal(top.config.mediaType, 'application/vnd.blockport.manifest.v1+json');
    assert.equal(top.layers.length, 1 + 3 + 14 + 1, "config, three layers, fourteen blocks, the vendor's manifest");
    assert.equal(top.layers.filter((l: Json) => l.mediaType === 'application/vnd.blockport.source.blob.v1').length, 1);

    const out = join(t.dir, 'app-1.tar');
    await ok(['materialize', `docker://${reg.host}/app:1`, `docker-archive:${out}:app:1`], env);
    const inspected = JSON.parse((await run('skopeo', ['inspect', `docker-archive:${out}`])).stdout);
    assert.deepEqual(inspected.Layers, original.config.rootfs.diff_ids);
    const manifest = JSON.parse((await run('tar', ['-xOf', out, 'manifest.json'])).stdout);
    assert.equal(sha256((await run('tar', ['-xOf', out, manifest[0].Config])).stdout), original.manifest.config.digest);

    // the same image pushed whole by the library: what a first push costs
    const w = (await openWriter(`docker://${reg.host}/first/app:1`)) as RemoteImageWriter;
    const reader = await openImage(`oci:${src}:1`);
    await blockify(reader, w, { rules: rulesFor(['java', 'node'], {}), compression: 'gzip' });
    firstPush.bytes = w.stats.uploadedBytes;
    firstPush.blobs = w.stats.uploaded;
    assert.equal(w.stats.skipped, 0);
  });

  it('a second image sharing blocks uploads only what is new', async () => {
    const mark = reg.log().length;
    const w = (await openWriter(`docker://${reg.host}/app:2`)) as RemoteImageWriter;
    // gzip, as the CLI does for registries, so the unchanged node layer is the same blob as app:1's
    const result = await blockify(await openImage(`oci:${src}:2`), w, { rules: rulesFor(['java', 'node'], {}), compression: 'gzip' });
    // new: the changed jar's block, the java layer that imports it, the config, the block-form
    // manifest (a blob: the transport manifest's config) and the vendor's manifest (a source
    // blob, docs/spec.md 17.1); all else is there
    assert.equal(result.layers.reduce((n, l) => n + l.newBlocks, 0), 1);
    assert.equal(w.stats.uploaded, 5);
    assert.ok(w.stats.skipped >= 14, `skipped ${w.stats.skipped}`);
    const uploadsLogged = reg.log().slice(mark).split('\n').filter((l) => l.includes('http.request.method=PUT') && /blobs\/uploads\/[^ ]*digest=sha256/.test(l)).length;
    assert.equal(uploadsLogged, 5, 'the registry saw five blob uploads');
    assert.ok(w.stats.uploadedBytes * 4 < firstPush.bytes, `second push ${w.stats.uploadedBytes} bytes vs first ${firstPush.bytes}`);
    console.log(`# first push: ${firstPush.blobs} blobs, ${firstPush.bytes} bytes; second push: ${w.stats.uploaded} blobs, ${w.stats.uploadedBytes} bytes (${w.stats.skipped} blobs, ${w.stats.skippedBytes} bytes already there)`);
  });

  it('keeps every block through garbage-collect, also with --delete-untagged', async () => {
    for (const flags of [[], ['--delete-untagged']]) {
      await run('docker-registry', ['garbage-collect', ...flags, reg.config]);
      for (const tag of ['1', '2']) {
        const top = await getJson(reg.host, `/v2/app/manifests/${tag}`);
        const manifest = await getJson(reg.host, `/v2/app/blobs/${top.config.digest}`);
        // the transport manifest's layers: the image's blobs and the vendor's manifest bytes
        for (const b of [manifest.config, ...manifest.layers, ...manifest.blocks, ...top.layers] as Json[]) {
          const res = await fetch(`http://${reg.host}/v2/app/blobs/${b.digest}`, { method: 'HEAD' });
          assert.equal(res.status, 200, `blob ${b.digest} after garbage-collect ${flags.join(' ')}`);
        }
      }
    }
    for (const tag of ['1', '2']) await ok(['materialize', `docker://${reg.host}/app:${tag}`, `docker-archive:${join(t.dir, `gc-${tag}.tar`)}`], env);
  });

  it('skopeo copy, with or without --all, copies every blob byte for byte; a runtime format refuses it', async () => {
    for (const extra of [['--all'], []]) {
      const copy = join(t.dir, `skopeo-copy${extra.join('')}`);
      await skopeoCopy(`docker://${reg.host}/app:1`, `oci:${copy}:1`, extra);
      const out = join(t.dir, `from-copy${extra.join('')}.tar`);
      await ok(['materialize', `oci:${copy}:1`, `docker-archive:${out}`], env);
      assert.deepEqual(JSON.parse((await run('skopeo', ['inspect', `docker-archive:${out}`])).stdout).Layers, original.config.rootfs.diff_ids);
    }
    const bad = join(t.dir, 'runtime.tar');
    await assert.rejects(skopeoCopy(`docker://${reg.host}/app:1`, `docker-archive:${bad}`), /artifact with type .*application\/vnd\.blockport\.manifest\.v1\+json/);
  });

  it('materializes a standard image into the registry, mounting layers it already holds', async () => {
    const mark = reg.log().length;
    await ok(['materialize', `docker://${reg.host}/app:1`, `docker://${reg.host}/std:1`], env);
    const mounted = reg.log().slice(mark).split('\n').filter((l) => l.includes('method=POST') && l.includes('mount=sha256') && l.includes('from=app') && l.includes('status=201'));
    assert.ok(mounted.length >= 1, 'the unchanged layer was mounted from app');
    const info = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/std:1`])).stdout);
    assert.equal(info.Layers.length, 3);
    const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--tls-verify=false', `docker://${reg.host}/std:1`])).stdout);
    assert.deepEqual(config.rootfs.diff_ids, original.config.rootfs.diff_ids);
    const archive = join(t.dir, 'std.tar');
    await skopeoCopy(`docker://${reg.host}/std:1`, `docker-archive:${archive}`);
    assert.deepEqual(JSON.parse((await run('skopeo', ['inspect', `docker-archive:${archive}`])).stdout).Layers, original.config.rootfs.diff_ids);
  });

  it('uploads big blobs in PATCH chunks the registry accepts', async () => {
    const file = join(t.dir, 'java1.tar');
    const bytes = await run('sha256sum', [file]);
    const digest = `sha256:${bytes.stdout.split(' ')[0]}` as ReturnType<typeof sha256>;
    const size = Number((await run('stat', ['-c', '%s', file])).stdout.trim());
    const repo = new Repository(new RegistryClient(reg.host), 'chunked', true);
    assert.equal(await uploadBlob(repo, { digest, size }, { file }, { chunkSize: 256 << 10 }), 'uploaded');
    assert.ok(reg.log().split('\n').filter((l) => l.includes('method=PATCH') && l.includes('/v2/chunked/')).length >= 2);
    assert.equal(await repo.blobSize(digest), size);
  });

  it('without credentials a protected registry is a one-line error; with them it works', async (ctx) => {
    const line = await htpasswdLine('alice', 'wonderland');
    if (!line) return ctx.skip('no htpasswd and no bcrypt crypt(3) to make a password file');
    const dir = join(t.dir, 'auth-registry');
    await mkdir(dir);
    await writeFile(join(dir, 'htpasswd'), `${line}\n`);
    const secured = await startRegistry(dir, join(dir, 'htpasswd'));
    try {
      const dst = `docker://${secured.host}/app:1`;
      const denied = await blockport(['blockify', `oci:${src}:1`, dst, '--preset', 'java'], env);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /^blockport: 127\.0\.0\.1:\d+\/app:1: unauthorized \(401\): authentication required.*--creds/);
      assert.equal(denied.stderr.trim().split('\n').length, 1, denied.stderr);
      const wrong = await blockport(['blockify', `oci:${src}:1`, dst, '--preset', 'java'], { ...env, BLOCKPORT_REGISTRY_AUTH: 'alice:nope' });
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /refused the credentials/);
      await ok(['blockify', `oci:${src}:1`, dst, '--preset', 'java'], { ...env, BLOCKPORT_REGISTRY_AUTH: 'alice:wonderland' });
      await ok(['materialize', dst, `docker-archive:${join(t.dir, 'auth.tar')}`], { ...env, BLOCKPORT_REGISTRY_AUTH: 'alice:wonderland' });
    } finally {
      await secured.stop();
    }
  });
});
