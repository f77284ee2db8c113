/**
 * The store's record of verified layers: apply checks that every block-form layer it receives
 * splices into its diff_id and records it; materialize from the store then copies recorded layers
 * without hashing them again (`--verify` hashes anyway); gc drops the records with the layers.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { blobPath, blockFormImage, entryBytes, flipByte, rewriteBlockLayers } from './fixtures/hostile.js';
import { bp, bpOk, copyDir, refusedApply, vendorScenario, type Scenario } from './bundle-helpers.js';

let s: Scenario;
let customerV1: string;

before(async () => {
  s = await vendorScenario();
  await bpOk(s.vendor, ['bundle', '--to', 'app:1', '-o', join(s.dir, 'app-1.bpk')]);
  await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', join(s.dir, 'app-2.bpk')]);
  customerV1 = join(s.dir, 'customer-v1');
  await bpOk(customerV1, ['apply', join(s.dir, 'app-1.bpk')]);
});
after(() => s?.cleanup());

interface Materialized {
  layers: { index: number; spliced: boolean; hashed: boolean }[];
}

async function materialize(home: string, args: string[]): Promise<Materialized> {
  return JSON.parse((await bpOk(home, ['materialize', ...args, '--json'])).stdout);
}

async function records(home: string): Promise<string[]> {
  return (await readdir(join(home, 'verified', 'sha256')).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{64}$/.test(n)).sort();
}

/** The layers whose copy plans (splice maps) the store keeps. */
async function maps(home: string): Promise<string[]> {
  return (await readdir(join(home, 'verified', 'sha256')).catch(() => [] as string[])).filter((n) => n.endsWith('.map')).map((n) => n.slice(0, -4)).sort();
}

/** The block-form layers of a store image, by digest. */
async function blockLayers(home: string, tag: string): Promise<string[]> {
  const { manifest } = await blockFormImage(home, tag);
  return manifest.layers.filter((l: { mediaType: string }) => l.mediaType.startsWith('application/vnd.blockport.layer.')).map((l: { digest: string }) => l.digest.slice(7)).sort();
}

test('apply checks and records the block-form layers it receives; materialize then copies them unhashed, the same bytes', async () => {
  const home = join(s.dir, 'c-apply');
  await copyDir(customerV1, home);
  const r = JSON.parse((await bpOk(home, ['apply', join(s.dir, 'app-2.bpk'), '--json'])).stdout);
  const v2 = await blockLayers(home, 'app:2');
  assert.ok(v2.length >= 1, 'app:2 has block-form layers');
  const v1 = await blockLayers(home, 'app:1');
  const fresh = v2.filter((d) => !v1.includes(d));
  assert.equal(r.splices.layers, fresh.length, 'only the layers app:1 did not have are checked');
  assert.ok(r.splices.bytes > s.changedJar, `${r.splices.bytes} bytes hashed`);
  assert.deepEqual(await records(home), [...new Set([...v1, ...v2])].sort());
  assert.deepEqual(await maps(home), await records(home), 'each recorded layer keeps its copy plan');

  const trusted = await materialize(home, ['app:2', `docker-archive:${join(s.dir, 'trusted.tar')}`]);
  const spliced = trusted.layers.filter((l) => l.spliced);
  assert.equal(spliced.length, v2.length);
  assert.ok(spliced.every((l) => !l.hashed), JSON.stringify(trusted.layers));
  const hashed = await materialize(home, ['app:2', `docker-archive:${join(s.dir, 'hashed.tar')}`, '--verify']);
  assert.ok(hashed.layers.every((l) => l.hashed), JSON.stringify(hashed.layers));
  assert.ok((await readFile(join(s.dir, 'trusted.tar'))).equals(await readFile(join(s.dir, 'hashed.tar'))));

  const again = JSON.parse((await bpOk(home, ['apply', join(s.dir, 'app-2.bpk'), '--json'])).stdout);
  assert.equal(again.splices.layers, 0, 'recorded layers are not checked twice');
});

test('a recorded layer is copied from its kept plan, the same bytes; a damaged plan is ignored and made again', async () => {
  const home = join(s.dir, 'c-map');
  await copyDir(customerV1, home);
  const out = (n: string) => join(s.dir, `map-${n}.tar`);
  await materialize(home, ['app:1', `docker-archive:${out('verify')}`, '--verify']);
  const fromMap = await materialize(home, ['app:1', `docker-archive:${out('map')}`]);
  assert.ok(fromMap.layers.filter((l) => l.spliced).every((l) => !l.hashed), JSON.stringify(fromMap.layers));
  assert.ok((await readFile(out('map'))).equals(await readFile(out('verify'))));
  const layers = await maps(home);
  assert.ok(layers.length >= 1);
  const file = join(home, 'verified', 'sha256', `${layers[0]}.map`);
  const good = await readFile(file);
  await flipByte(file, Math.floor(good.length / 2));
  await materialize(home, ['app:1', `docker-archive:${out('damaged')}`]);
  assert.ok((await readFile(out('damaged'))).equals(await readFile(out('verify'))), 'spliced again, not copied from the damaged plan');
  assert.ok((await readFile(file)).equals(good), 'the plan made again replaces it');
});

test('a block that rots under a recorded layer: materialize --verify and fsck name it, and fsck drops the records', async () => {
  const home = join(s.dir, 'c-rot');
  await copyDir(customerV1, home);
  const { manifest } = await blockFormImage(home, 'app:1');
  const block = manifest.blocks[0];
  await flipByte(blobPath(home, block.digest), 100);
  const r = await bp(home, ['materialize', 'app:1', `docker-archive:${join(s.dir, 'rot.tar')}`, '--verify']);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, new RegExp(`block ${block.digest} is corrupt`));
  assert.ok((await records(home)).length > 0, 'still recorded: materialize alone would copy it unhashed');
  const fsck = await bp(home, ['fsck']);
  assert.notEqual(fsck.code, 0);
  assert.match(fsck.stdout + fsck.stderr, new RegExp(block.digest.slice(7)));
  // fsck drops the records, so a plain materialize hashes again and refuses the rotten block
  assert.deepEqual(await records(home), []);
  assert.deepEqual(await maps(home), [], 'and the copy plans kept beside them');
  const again = await bp(home, ['materialize', 'app:1', `docker-archive:${join(s.dir, 'rot2.tar')}`]);
  assert.equal(again.code, 4, again.stderr);
  assert.match(again.stderr, new RegExp(`block ${block.digest} is corrupt`));
});

test('a blockified image is hashed by its first materialize from the store, and recorded', async () => {
  const home = join(s.dir, 'v-first');
  await copyDir(s.vendor, home);
  assert.deepEqual(await records(home), [], 'blockify records nothing');
  const first = await materialize(home, ['app:2', `docker-archive:${join(s.dir, 'first.tar')}`]);
  assert.ok(first.layers.every((l) => l.hashed));
  assert.deepEqual(await records(home), await blockLayers(home, 'app:2'));
  assert.deepEqual(await maps(home), await records(home), 'with their copy plans');
  const second = await materialize(home, ['app:2', `docker-archive:${join(s.dir, 'second.tar')}`]);
  // the plain layer was gzipped: decompressed, so hashed as it goes
  assert.ok(second.layers.filter((l) => l.spliced).every((l) => !l.hashed), JSON.stringify(second.layers));
  // an oci: source keeps no record: always hashed
  await bpOk(home, ['materialize', 'app:2', `oci:${join(s.dir, 'layout')}:2`]);
  const fromLayout = await materialize(home, [`oci:${join(s.dir, 'layout')}:2`, `docker-archive:${join(s.dir, 'third.tar')}`]);
  assert.ok(fromLayout.layers.every((l) => l.hashed));
});

test('apply refuses an image whose block-form layer does not splice into its diff_id, and the store stays as it was', async () => {
  const vendor = join(s.dir, 'v-bad');
  await copyDir(s.vendor, vendor);
  let changed = false;
  // one folder entry gets another mode: a sound layer, but not the one the config's diff_id names
  const edits = await rewriteBlockLayers(vendor, 'app:2', (e) => {
    if (changed || e.type !== 'dir') return undefined;
    changed = true;
    return entryBytes({ path: `${e.path}/`, type: 'dir', mode: 0o700 });
  });
  assert.equal(edits, 1);
  await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', join(s.dir, 'bad.bpk')]);
  await refusedApply(customerV1, join(s.dir, 'c-bad'), join(s.dir, 'bad.bpk'), 4, /splices into sha256:[0-9a-f]{64} .*not its diff_id/);
});

test('gc drops the records of the layers it removes, and temp files of dead record writers', async () => {
  const home = join(s.dir, 'c-gc');
  await copyDir(customerV1, home);
  await bpOk(home, ['apply', join(s.dir, 'app-2.bpk')]);
  const v1 = await blockLayers(home, 'app:1');
  const v2 = await blockLayers(home, 'app:2');
  // a record write killed half-way leaves a temp file: gc removes it with the others
  const leftover = join(home, 'verified', 'sha256', `.${v2[0]}.tmp-2147483646-0badcafe`);
  await writeFile(leftover, 'sha256:');
  await bpOk(home, ['rmi', 'app:1']);
  await bpOk(home, ['gc', '--grace', '0']);
  assert.deepEqual(await records(home), v2);
  assert.deepEqual(await maps(home), v2, 'and their copy plans');
  assert.equal(existsSync(leftover), false);
  assert.ok(v1.some((d) => !v2.includes(d)), 'app:1 had a layer of its own');
});

test('a layer two targets share is checked once', async () => {
  const file = join(s.dir, 'both.bpk');
  await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--to', 'worker:1', '-o', file]);
  const home = join(s.dir, 'c-both');
  const r = JSON.parse((await bpOk(home, ['apply', file, '--json'])).stdout);
  const app = await blockLayers(home, 'app:2');
  const worker = await blockLayers(home, 'worker:1');
  const unique = new Set([...app, ...worker]);
  assert.ok(unique.size < app.length + worker.length, 'app:2 and worker:1 share a block-form layer');
  assert.equal(r.splices.layers, unique.size);
  assert.deepEqual(await records(home), [...unique].sort());
});
