/**
 * build with a real registry (distribution 2.8, `docker-registry`, on 127.0.0.1 only) at both
 * ends: the base pulled from docker://, the built image pushed to docker:// (layers gzipped, the
 * blocks reachable through the transport manifest), then materialized back out of the registry.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ok } from './cli.js';
import { startRegistry, type LocalRegistry } from './fixtures/registry.js';
import { gnuTarLayer, javaLikeTree, makeTree, readImage, run, skopeoCopy, tempDir, umociImage } from './fixtures/images.js';

let t: { dir: string; cleanup(): Promise<void> };
let registry: LocalRegistry | undefined;
let skip: string | undefined;

before(async () => {
  t = await tempDir('build-registry');
  try {
    await run('docker-registry', ['--version']);
    registry = await startRegistry(join(t.dir, 'registry'));
  } catch (err) {
    skip = `docker-registry is not available: ${(err as Error).message.split('\n')[0]}`;
  }
});
after(async () => {
  await registry?.stop();
  await t.cleanup();
});

test('build from a docker:// base into docker://, then materialize out of the registry', async (ctx) => {
  if (skip || !registry) return ctx.skip(skip);
  const host = registry.host;
  const baseTree = join(t.dir, 'base-tree');
  await makeTree(baseTree, [{ path: 'etc/os-release', type: 'file', content: 'ID=tiny\n' }]);
  await gnuTarLayer(baseTree, join(t.dir, 'base.tar'));
  await umociImage(join(t.dir, 'base'), '1', [join(t.dir, 'base.tar')]);
  await skopeoCopy(`oci:${join(t.dir, 'base')}:1`, `docker://${host}/tiny/base:1`);

  const app = join(t.dir, 'app');
  await makeTree(app, javaLikeTree({ jars: 3, seed: 5, minSize: 20_000, maxSize: 40_000 }));
  const env = { BLOCKPORT_HOME: join(t.dir, 'home') };
  const r = JSON.parse((await ok(['build', '--from', `docker://${host}/tiny/base:1`, '--add', `${app}/usr/share/java:/app/lib`, '--preset', 'java', '--json', `docker://${host}/team/app:1`], env)).stdout);
  assert.equal(r.baseLayers, 1);
  assert.equal(r.blocks.length, 3);
  assert.equal(r.layers[0].blockified, true);
  const out = join(t.dir, 'std');
  await ok(['materialize', `docker://${host}/team/app:1`, `oci:${out}:1`], env);
  const img = await readImage(out, '1');
  assert.equal(img.config.rootfs.diff_ids.length, 2);
  assert.equal(img.config.rootfs.diff_ids[1], r.layers[0].diffId);
  // the tag names the transport manifest, whose layers keep every blob for registry gc and copiers
  const top = JSON.parse((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/team/app:1`])).stdout);
  assert.equal(top.artifactType, 'application/vnd.blockport.image.v1');
  assert.equal(top.config.mediaType, 'application/vnd.blockport.manifest.v1+json');
  assert.equal(top.layers.length, 1 + 2 + 3, 'config, two layers, three blocks');
});
