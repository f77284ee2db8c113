/** rmi + gc: the blobs only an untagged image used go; everything a tag reaches stays usable. */
import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { blockport, ok } from './cli.js';
import { gnuTarLayer, javaLikeTree, makeTree, readImage, tempDir, umociImage } from './fixtures/images.js';

let t: { dir: string; cleanup(): Promise<void> };
let env: NodeJS.ProcessEnv;
let oci: string;

const blobs = async () => new Set(await readdir(join(env.BLOCKPORT_HOME!, 'blobs', 'sha256')));

before(async () => {
  t = await tempDir('gc');
  env = { BLOCKPORT_HOME: join(t.dir, 'home') };
  oci = join(t.dir, 'oci');
  for (const [tag, changed] of [['1', []], ['2', [0, 1]]] as const) {
    const root = join(t.dir, `root-${tag}`);
    await makeTree(root, javaLikeTree({ jars: 5, seed: 4, minSize: 30_000, maxSize: 90_000, changed: [...changed] }));
    await gnuTarLayer(root, join(t.dir, `layer-${tag}.tar`));
    await umociImage(oci, tag, [join(t.dir, `layer-${tag}.tar`)]);
  }
  for (const tag of ['1', '2']) await ok(['blockify', `oci:${oci}:${tag}`, `app:${tag}`, '--preset', 'java'], env);
});
after(() => t.cleanup());

test('gc keeps what tags reach, removes what only an untagged image used', async () => {
  const all = await blobs();
  const dry = JSON.parse((await ok(['gc', '--grace', '0', '--dry-run', '--json'], env)).stdout);
  assert.equal(dry.removed.length, 0, 'both images are tagged: nothing to collect');

  await ok(['rmi', 'app:1'], env);
  const planned = JSON.parse((await ok(['gc', '--grace', '0', '--dry-run', '--json'], env)).stdout);
  assert.deepEqual(await blobs(), all, 'a dry run deletes nothing');
  // app:1 alone had: 2 old jars, its layer, index, manifest, carrier (config differs too)
  assert.ok(planned.removed.length >= 5 && planned.removed.length <= 8, `planned ${planned.removed.length}`);

  const recent = JSON.parse((await ok(['gc', '--json'], env)).stdout);
  assert.equal(recent.removed.length, 0, 'blobs younger than the grace period stay');
  assert.equal(recent.kept, planned.removed.length);

  const r = JSON.parse((await ok(['gc', '--grace', '0', '--json'], env)).stdout);
  assert.equal(r.removed.length, planned.removed.length);
  const left = await blobs();
  assert.equal(left.size, all.size - r.removed.length);

  const out = join(t.dir, 'app-2.tar');
  await ok(['materialize', 'app:2', `docker-archive:${out}`], env);
  assert.deepEqual(JSON.parse((await ok(['inspect', 'app:2', '--json'], env)).stdout).layers.map((l: { diffId: string }) => l.diffId), (await readImage(oci, '2')).config.rootfs.diff_ids);
  const fsck = await blockport(['fsck', '--json'], env);
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
});

test('gc waits for nobody: a live holder of the store lock makes it fail at once', async () => {
  await writeFile(join(env.BLOCKPORT_HOME!, '.lock'), `${process.pid}\n`);
  try {
    const r = await blockport(['gc', '--grace', '0'], env);
    assert.equal(r.code, 7);
    assert.match(r.stderr, /^blockport: .* in use by process \d+/);
  } finally {
    await writeFile(join(env.BLOCKPORT_HOME!, '.lock'), '');
    await import('node:fs/promises').then((f) => f.rm(join(env.BLOCKPORT_HOME!, '.lock')));
  }
});

test('rmi of an unknown image is a one-line not-found error', async () => {
  const r = await blockport(['rmi', 'nope:1'], env);
  assert.equal(r.code, 3);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
