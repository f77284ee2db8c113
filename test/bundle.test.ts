/**
 * The update-bundle story end to end: a vendor bundles app:2 for a customer that holds app:1, the
 * customer applies it and gets the very image the vendor built (same diff_ids, same config).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readImage, run, skopeoCopy } from './fixtures/images.js';
import { bp, bpOk, bundleManifest, copyDir, storeState, vendorScenario, type Scenario } from './bundle-helpers.js';

let s: Scenario;
/** A customer store holding app:1 only, made by applying a full bundle of it; copied per test. */
let customerV1: string;

before(async () => {
  s = await vendorScenario();
  await bpOk(s.vendor, ['bundle', '--to', 'app:1', '-o', join(s.dir, 'app-1.bpk'), '--sign', s.key]);
  customerV1 = join(s.dir, 'customer-v1');
  await bpOk(customerV1, ['apply', join(s.dir, 'app-1.bpk'), '--trust', s.pub]);
});
after(() => s?.cleanup());

async function customer(name: string): Promise<string> {
  const home = join(s.dir, name);
  await copyDir(customerV1, home);
  return home;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Config digest and layer digests of a docker-archive, computed from its files. */
async function dockerArchiveIds(file: string): Promise<{ config: string; diffIds: string[] }> {
  const out = `${file}.x`;
  await mkdir(out);
  await run('tar', ['-xf', file, '-C', out]);
  const [m] = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8'));
  const diffIds = [];
  for (const l of m.Layers as string[]) diffIds.push(sha(await readFile(join(out, l))));
  return { config: sha(await readFile(join(out, m.Config))), diffIds };
}

test('a full bundle of v1 gives the customer app:1, and fsck finds the store clean', async () => {
  const images = JSON.parse((await bpOk(customerV1, ['images', '--json'])).stdout);
  assert.deepEqual(images.map((i: { name: string }) => i.name), ['app:1']);
  const fsck = JSON.parse((await bpOk(customerV1, ['fsck', '--json'])).stdout);
  assert.equal(fsck.ok, true);
  assert.equal(fsck.images, 1);
});

test('--dry-run prints the full image, the layer-level update and this bundle side by side', async () => {
  const text = (await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--dry-run'])).stdout;
  assert.match(text, /TARGET\s+IMAGE\s+LAYER-LEVEL UPDATE\s+THIS BUNDLE/);
  assert.match(text, /^app:2 /m);
  const p = JSON.parse((await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--dry-run', '--json'])).stdout).plan;
  assert.equal(p.perTarget[0].layerLevel.layers, 2, 'the jars layer and the app layer changed');
  assert.ok(p.sizes.layerLevel >= s.jarLayer);
  // the plan counts bytes before compression: block-form layers are stored uncompressed
  assert.ok(p.sizes.send < s.changedJar + 128 * 1024, `sends ${p.sizes.send}`);
  assert.ok(p.prerequisites.length > 0);
  assert.deepEqual(await readdir(s.dir).then((n) => n.filter((x) => x.endsWith('.bpk') && x !== 'app-1.bpk')), [], 'a dry run writes nothing');
});

test('bundle --since carries about the changed jar; applied, v2 materializes to the vendor\'s exact image', async () => {
  const file = join(s.dir, 'app-2.bpk');
  const r = JSON.parse((await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', file, '--sign', s.key, '--json'])).stdout);
  const size = (await stat(file)).size;
  assert.ok(size >= s.changedJar && size <= s.changedJar * 1.1 + 64 * 1024, `bundle ${size} bytes for a ${s.changedJar}-byte jar`);
  assert.ok(r.plan.sizes.layerLevel / size > 5, `layer-level ${r.plan.sizes.layerLevel} vs bundle ${size}`);
  const home = await customer('c-apply');
  const applied = JSON.parse((await bpOk(home, ['apply', file, '--trust', s.pub, '--json'])).stdout);
  assert.equal(applied.signature.verified, true);
  assert.deepEqual(applied.targets.map((t: { name: string }) => t.name), ['app:2']);
  assert.ok(applied.blobs.received > 0 && applied.blobs.present === 0);

  const archive = join(s.dir, 'app-2.docker.tar');
  await bpOk(home, ['materialize', 'app:2', `docker-archive:${archive}:app:2`]);
  const want = await readImage(s.oci, '2');
  const got = await dockerArchiveIds(archive);
  assert.equal(got.config, want.manifest.config.digest);
  assert.deepEqual(got.diffIds, want.config.rootfs.diff_ids);
  // tools blockport did not write accept it
  const copied = join(s.dir, 'skopeo-oci');
  await skopeoCopy(`docker-archive:${archive}`, `oci:${copied}:2`);
  await run('umoci', ['unpack', '--image', `${copied}:2`, join(s.dir, 'unpacked')]);
  assert.equal((await stat(join(s.dir, 'unpacked', 'rootfs', 'app', 'config.yml'))).size, 'version: 2\n'.length);

  const again = JSON.parse((await bpOk(home, ['apply', file, '--trust', s.pub, '--json'])).stdout);
  assert.equal(again.noop, true, 'applying twice is a no-op');
  assert.equal(again.blobs.present, again.blobs.total);
  assert.equal(JSON.parse((await bpOk(home, ['fsck', '--json'])).stdout).ok, true);
});

// recipes need the held blobs' bytes, which an inventory does not give: compare with --no-recipes
test('an inventory from the customer gives the same bundle as --since --no-recipes', async () => {
  const home = await customer('c-inventory');
  const inv = join(s.dir, 'customer-inventory.json');
  await bpOk(home, ['inventory', '-o', inv]);
  const parsed = JSON.parse(await readFile(inv, 'utf8'));
  assert.equal(parsed.version, 1);
  assert.deepEqual(parsed.images.map((i: { name: string }) => i.name), ['app:1']);
  const a = JSON.parse((await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--have', inv, '-o', join(s.dir, 'have.bpk'), '--json'])).stdout);
  const b = JSON.parse((await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--no-recipes', '-o', join(s.dir, 'since.bpk'), '--json'])).stdout);
  // the same blobs and prerequisites; bundle.json differs only in its informative created and since
  const [ma, mb] = await Promise.all([bundleManifest(join(s.dir, 'have.bpk')), bundleManifest(join(s.dir, 'since.bpk'))]);
  assert.deepEqual(ma.blobs, mb.blobs);
  assert.deepEqual(ma.prerequisites, mb.prerequisites);
  assert.equal(a.written.storedBytes, b.written.storedBytes);
});

test('--split writes volumes that cat joins into the same bundle; apply takes the first volume', async () => {
  const whole = join(s.dir, 'whole.bpk');
  const split = join(s.dir, 'split.bpk');
  // the whole image (no --since): several MB, so 1M volumes (the smallest --split takes) are several
  await bpOk(s.vendor, ['bundle', '--to', 'app:2', '-o', whole], { SOURCE_DATE_EPOCH: '1700000000' });
  const r = JSON.parse((await bpOk(s.vendor, ['bundle', '--to', 'app:2', '-o', split, '--split', '1M', '--json'], { SOURCE_DATE_EPOCH: '1700000000' })).stdout);
  assert.ok(r.written.files.length >= 3);
  const parts = await Promise.all(r.written.files.map((f: string) => readFile(f)));
  assert.ok(parts.slice(0, -1).every((p: Buffer) => p.length === 1024 * 1024));
  assert.deepEqual(Buffer.concat(parts), await readFile(whole));
  const home = await customer('c-split');
  await bpOk(home, ['apply', `${split}.001`]);
  const images = JSON.parse((await bpOk(home, ['images', '--json'])).stdout);
  assert.deepEqual(images.map((i: { name: string }) => i.name).sort(), ['app:1', 'app:2']);
});

test('several targets: a block both need travels once, and both are tagged', async () => {
  const file = join(s.dir, 'release.bpk');
  const r = JSON.parse((await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--to', 'worker:1', '--since', 'app:1', '-o', file, '--json'])).stdout);
  const m = await bundleManifest(file);
  const digests = m.blobs.map((b) => b.digest);
  assert.equal(new Set(digests).size, digests.length);
  assert.equal(m.blobs.filter((b) => b.size === s.changedJar).length, 1, 'the changed jar once');
  assert.ok((await stat(file)).size < s.changedJar * 1.1 + 128 * 1024);
  assert.deepEqual(r.plan.perTarget.map((t: { name: string }) => t.name), ['app:2', 'worker:1']);
  const home = await customer('c-multi');
  await bpOk(home, ['apply', file]);
  const images = JSON.parse((await bpOk(home, ['images', '--json'])).stdout);
  assert.deepEqual(images.map((i: { name: string }) => i.name).sort(), ['app:1', 'app:2', 'worker:1']);
});

test('a standard image from an oci: layout travels as whole layers under the name given', async () => {
  const file = join(s.dir, 'std.bpk');
  await bpOk(s.vendor, ['bundle', '--to', `std:2=oci:${s.oci}:2`, '--since', `oci:${s.oci}:1`, '-o', file]);
  const m = await bundleManifest(file);
  assert.deepEqual(m.targets.map((t) => t.name), ['std:2']);
  const home = join(s.dir, 'c-std');
  // the receiver holds the standard v1 (its base layer is the prerequisite)
  await bpOk(s.vendor, ['bundle', '--to', `std:1=oci:${s.oci}:1`, '-o', join(s.dir, 'std-1.bpk')]);
  await bpOk(home, ['apply', join(s.dir, 'std-1.bpk')]);
  await bpOk(home, ['apply', file]);
  const archive = join(s.dir, 'std-2.docker.tar');
  await bpOk(home, ['materialize', 'std:2', `docker-archive:${archive}`]);
  assert.deepEqual((await dockerArchiveIds(archive)).diffIds, (await readImage(s.oci, '2')).config.rootfs.diff_ids);
});

test('load pipes the image into podman load (or says clearly why it cannot)', async () => {
  const home = await customer('c-load');
  const none = await bp(home, ['load', 'app:1'], { PATH: join(s.dir, 'no-tools') });
  assert.equal(none.code, 11);
  assert.match(none.stderr, /^blockport: cannot load images: docker is not installed; podman is not installed/);
  assert.equal(none.stderr.trim().split('\n').length, 1);
  const podman = await run('podman', ['--version']).catch(() => undefined);
  if (!podman) return;
  const conf = join(s.dir, 'podman');
  await mkdir(conf);
  await run('sh', ['-c', `printf '[storage]\\ndriver = "vfs"\\ngraphroot = "${conf}/root"\\nrunroot = "${conf}/run"\\n' > ${conf}/storage.conf`]);
  await run('sh', ['-c', `printf '[engine]\\nevents_logger = "file"\\ncgroup_manager = "cgroupfs"\\n' > ${conf}/containers.conf`]);
  const env = { CONTAINERS_STORAGE_CONF: join(conf, 'storage.conf'), CONTAINERS_CONF: join(conf, 'containers.conf') };
  const r = await bp(home, ['load', 'app:1', '--tool', 'podman', '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).loaded, ['localhost/app:1']);
  const id = (await run('podman', ['image', 'inspect', 'localhost/app:1', '--format', '{{.Id}}'], { env: { ...process.env, ...env } })).stdout.trim();
  assert.equal(`sha256:${id}`, (await readImage(s.oci, '1')).manifest.config.digest);
});

test('the store state after a failed bundle command is untouched (sanity for the fault tests)', async () => {
  const before = await storeState(s.vendor);
  const r = await bp(s.vendor, ['bundle', '--to', 'nope:1', '-o', join(s.dir, 'nope.bpk')]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /no image nope:1 in the store/);
  assert.deepEqual(await storeState(s.vendor), before);
});
