/**
 * A two-platform image (an OCI index of linux/amd64 and linux/arm64 manifests with different
 * layers, gzipped by GNU gzip) goes through blockify, bundle, apply and materialize whole: every
 * platform is kept, and the index digest comes back; a docker-archive takes one platform.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blockport, ok } from './cli.js';
import { indexOf, tagLayout, taggedBlob, vendorImage, type Blob } from './fidelity-fixtures.js';
import { gnuTarLayer, javaLikeTree, makeTree, run, tempDir } from './fixtures/images.js';
import { startRegistry } from './fixtures/registry.js';

describe('multi-platform images', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  const vendor = () => join(t.dir, 'vendor');
  const m: Record<string, Blob> = {};
  let index: Blob;
  const diffIds: Record<string, string[]> = {};

  before(async () => {
    t = await tempDir('fidelity-platforms');
    env = { BLOCKPORT_HOME: join(t.dir, 'home') };
    for (const [arch, seed] of [['amd64', 21], ['arm64', 22]] as const) {
      const root = join(t.dir, `tree-${arch}`);
      await makeTree(root, [...javaLikeTree({ jars: 4, seed, minSize: 30_000, maxSize: 150_000 }), { path: 'etc/arch', type: 'file', content: `${arch}\n` }]);
      const tar = join(t.dir, `${arch}.tar`);
      await gnuTarLayer(root, tar);
      m[arch] = await vendorImage(vendor(), [tar], { compress: 'gzip -6 -n', mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', arch });
      diffIds[arch] = JSON.parse((await run('sh', ['-c', `sha256sum '${tar}'`])).stdout.replace(/^(\w+).*\n?$/s, '["sha256:$1"]'));
    }
    index = await indexOf(vendor(), [m.amd64, m.arm64]);
    await tagLayout(vendor(), { multi: index });
  });
  after(() => t.cleanup());

  it('blockify keeps every platform in one block-form index', async () => {
    const r = JSON.parse((await ok(['blockify', `oci:${vendor()}:multi`, 'multi:1', '--preset', 'java', '--json'], env)).stdout);
    assert.deepEqual(r.platforms.map((p: { platform: string }) => p.platform), ['linux/amd64', 'linux/arm64']);
    assert.equal(r.layers.length, 2);
    assert.ok(r.layers.every((l: { recipe?: string }) => l.recipe === 'GNU gzip -6'));
  });

  it('materialize to oci: writes both platforms under the vendor\'s index digest', async () => {
    const out = join(t.dir, 'out');
    const r = await ok(['materialize', 'multi:1', `oci:${out}:v1`], env);
    assert.match(r.stdout, /index sha256:[0-9a-f]{64}: the source's own, byte for byte/);
    assert.equal((await taggedBlob(out, 'v1')).digest, index.digest);
    for (const arch of ['amd64', 'arm64']) {
      const copy = join(t.dir, `copy-${arch}`);
      await run('skopeo', ['copy', '--quiet', '--insecure-policy', '--preserve-digests', '--override-arch', arch, `oci:${out}:v1`, `oci:${copy}:v1`]);
      assert.equal((await taggedBlob(copy, 'v1')).digest, m[arch].digest);
    }
  });

  it('an index of one platform is kept too: materialize tags the vendor\'s index digest', async () => {
    const single = await indexOf(vendor(), [m.arm64]);
    await tagLayout(vendor(), { multi: index, single });
    const b = await ok(['blockify', `oci:${vendor()}:single`, 'single:1', '--preset', 'java'], env);
    assert.doesNotMatch(b.stdout, /PLATFORM/);
    const out = join(t.dir, 'single');
    const r = await ok(['materialize', 'single:1', `oci:${out}:v1`, '--require-original'], env);
    assert.match(r.stdout, /the source's own, byte for byte \(and its index\)/);
    assert.equal((await taggedBlob(out, 'v1')).digest, single.digest);
  });

  it('a standard multi-platform image is copied whole, under its own index digest', async () => {
    const out = join(t.dir, 'std-copy');
    await ok(['materialize', `oci:${vendor()}:multi`, `oci:${out}:v1`], env);
    assert.equal((await taggedBlob(out, 'v1')).digest, index.digest);
  });

  it('travels through a bundle and comes back with the same index digest', async () => {
    const bundle = join(t.dir, 'multi.bpk');
    await ok(['bundle', '--to', 'multi:1', '-o', bundle], env);
    const there = { BLOCKPORT_HOME: join(t.dir, 'receiver') };
    await ok(['apply', bundle], there);
    const out = join(t.dir, 'received');
    await ok(['materialize', 'multi:1', `oci:${out}:v1`], there);
    assert.equal((await taggedBlob(out, 'v1')).digest, index.digest);
  });

  it('travels through push and pull and comes back with the same index digest', async () => {
    const reg = await startRegistry(join(t.dir, 'registry'));
    try {
      await ok(['push', 'multi:1', `docker://${reg.host}/acme/multi:1`], env);
      // the per-platform transport manifests are tagged too, so --delete-untagged keeps them
      await run('docker-registry', ['garbage-collect', '--delete-untagged', reg.config]);
      const there = { BLOCKPORT_HOME: join(t.dir, 'puller') };
      await ok(['pull', `docker://${reg.host}/acme/multi:1`, 'multi:1'], there);
      const out = join(t.dir, 'pulled');
      await ok(['materialize', 'multi:1', `oci:${out}:v1`], there);
      assert.equal((await taggedBlob(out, 'v1')).digest, index.digest);
      // and straight to a registry: the vendor's index digest there too
      await ok(['materialize', 'multi:1', `docker://${reg.host}/acme/std:1`, '--require-original'], there);
      const res = await fetch(`http://${reg.host}/v2/acme/std/manifests/1`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
      assert.equal(res.headers.get('docker-content-digest'), index.digest);
    } finally {
      await reg.stop();
    }
  });

  it('--platform picks one: its own manifest digest, or one image of a docker-archive', async () => {
    const out = join(t.dir, 'arm');
    await ok(['materialize', 'multi:1', `oci:${out}:v1`, '--platform', 'linux/arm64'], env);
    assert.equal((await taggedBlob(out, 'v1')).digest, m.arm64.digest);
    const tar = join(t.dir, 'arm.tar');
    await ok(['materialize', 'multi:1', `docker-archive:${tar}:app:arm`, '--platform', 'linux/arm64'], env);
    assert.deepEqual(JSON.parse((await run('skopeo', ['inspect', `docker-archive:${tar}`])).stdout).Layers, diffIds.arm64);
    const host = join(t.dir, 'host.tar');
    await ok(['materialize', 'multi:1', `docker-archive:${host}:app:host`], env);
    assert.deepEqual(JSON.parse((await run('skopeo', ['inspect', `docker-archive:${host}`])).stdout).Layers, process.arch === 'arm64' ? diffIds.arm64 : diffIds.amd64);
  });

  it('refuses two platforms for a docker-archive, and a platform the index lacks, naming what it holds', async () => {
    const two = await blockport(['materialize', 'multi:1', `docker-archive:${join(t.dir, 'x.tar')}`, '--platform', 'linux/amd64', '--platform', 'linux/arm64'], env);
    assert.equal(two.code, 2, two.stderr);
    assert.match(two.stderr, /a docker-archive holds one image: choose one --platform \(.* holds linux\/amd64, linux\/arm64\)/);
    const none = await blockport(['blockify', `oci:${vendor()}:multi`, 'none:1', '--platform', 'linux/s390x'], env);
    assert.equal(none.code, 3, none.stderr);
    assert.match(none.stderr, /no image for linux\/s390x \(it holds linux\/amd64, linux\/arm64\)/);
  });

  it('an index without the host\'s platform is blockified and written back whole; a docker-archive needs --platform', async () => {
    const other: Blob[] = [];
    for (const arch of ['ppc64le', 's390x']) {
      const tar = join(t.dir, `${arch}.tar`);
      await makeTree(join(t.dir, `tree-${arch}`), [...javaLikeTree({ jars: 2, seed: arch.length, minSize: 30_000, maxSize: 60_000 }), { path: 'etc/arch', type: 'file', content: `${arch}\n` }]);
      await gnuTarLayer(join(t.dir, `tree-${arch}`), tar);
      other.push(await vendorImage(vendor(), [tar], { compress: 'gzip -6 -n', mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', arch }));
    }
    const foreign = await indexOf(vendor(), other);
    await tagLayout(vendor(), { multi: index, foreign });
    await ok(['blockify', `oci:${vendor()}:foreign`, 'foreign:1', '--preset', 'java'], env);
    const out = join(t.dir, 'foreign');
    await ok(['materialize', 'foreign:1', `oci:${out}:v1`, '--require-original'], env);
    assert.equal((await taggedBlob(out, 'v1')).digest, foreign.digest);
    if (process.arch === 'ppc64' || process.arch === 's390x') return;
    const r = await blockport(['materialize', 'foreign:1', `docker-archive:${join(t.dir, 'foreign.tar')}`], env);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /no image for linux\/\w+ \(it holds linux\/ppc64le, linux\/s390x\); choose one with --platform/);
    await ok(['materialize', 'foreign:1', `docker-archive:${join(t.dir, 'foreign.tar')}`, '--platform', 'linux/s390x'], env);
  });

  it('blockify --platform keeps one platform; the index is then not the vendor\'s', async () => {
    await ok(['blockify', `oci:${vendor()}:multi`, 'arm:1', '--preset', 'java', '--platform', 'linux/arm64'], env);
    const out = join(t.dir, 'arm-only');
    await ok(['materialize', 'arm:1', `oci:${out}:v1`], env);
    assert.equal((await taggedBlob(out, 'v1')).digest, m.arm64.digest);
  });
});
