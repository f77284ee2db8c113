/**
 * What a customer with a stick from an unknown hand, a rotting disk or a killed process must be
 * safe from: an old release replayed (rollback), a secret key trusted as a public one, an existing
 * file replaced, a corrupt blob that a re-apply skips, leftovers nothing removes, several bundles
 * on one line, and messages that name what is wrong. Every blockport call is a child process.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { blobPath, blockFormImage, deadPid, flipByte, tempFilesIn } from './fixtures/hostile.js';
import { run } from './fixtures/images.js';
import { bp, bpOk, bundleManifest, copyDir, storeState, vendorScenario, type Scenario } from './bundle-helpers.js';

let s: Scenario;
let customerV1: string;
const at = (n: string) => join(s.dir, n);

before(async () => {
  s = await vendorScenario();
  // two releases of one tag, signed: v1's bundle is written first, so its release is older
  await bpOk(s.vendor, ['bundle', '--to', 'app:latest=app:1', '-o', at('latest-1.bpk'), '--sign', s.key]);
  await new Promise((r) => setTimeout(r, 5));
  await bpOk(s.vendor, ['bundle', '--to', 'app:latest=app:2', '-o', at('latest-2.bpk'), '--sign', s.key]);
  await bpOk(s.vendor, ['bundle', '--to', 'app:1', '-o', at('app-1.bpk')]);
  await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', at('app-2.bpk')]);
  await bpOk(s.vendor, ['bundle', '--to', 'worker:1', '--since', 'app:1', '-o', at('worker-1.bpk')]);
  customerV1 = at('customer-v1');
  await bpOk(customerV1, ['apply', at('app-1.bpk')]);
});
after(() => s?.cleanup());

let n = 0;
async function customer(): Promise<string> {
  const home = at(`c${n++}`);
  await copyDir(customerV1, home);
  return home;
}

const tagged = async (home: string) => Object.fromEntries(JSON.parse((await bpOk(home, ['images', '--json'])).stdout).map((i: { name: string; digest: string }) => [i.name, i.digest]));

test('rollback: an older signed release of a tag is refused (exit 12) unless --allow-downgrade', async () => {
  const home = at('rollback');
  const [m1, m2] = await Promise.all([bundleManifest(at('latest-1.bpk')), bundleManifest(at('latest-2.bpk'))]);
  const r1 = (m1.targets[0] as { release?: number }).release!;
  const r2 = (m2.targets[0] as { release?: number }).release!;
  assert.ok(r1 < r2, `releases grow: ${r1} < ${r2}`);
  await bpOk(home, ['apply', at('latest-2.bpk'), '--trust', s.pub]);
  const v2 = (await tagged(home))['app:latest'];
  const before = await storeState(home);
  const r = await bp(home, ['apply', at('latest-1.bpk'), '--trust', s.pub]);
  assert.equal(r.code, 12, r.stderr);
  assert.match(r.stderr, new RegExp(`^blockport: .*app:latest release ${r1} .* is older than the release ${r2} .*--allow-downgrade`));
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.deepEqual(await storeState(home), before, 'nothing written');
  // untagging does not make the old release new again
  await bpOk(home, ['rmi', 'app:latest']);
  assert.equal((await bp(home, ['apply', at('latest-1.bpk')])).code, 12);
  const forced = JSON.parse((await bpOk(home, ['apply', at('latest-1.bpk'), '--allow-downgrade', '--json'])).stdout);
  assert.deepEqual(forced.downgraded, ['app:latest']);
  assert.notEqual((await tagged(home))['app:latest'], v2);
  // the downgrade is now what was applied: the newer one applies again, the same one is a no-op
  await bpOk(home, ['apply', at('latest-2.bpk')]);
  assert.equal((await tagged(home))['app:latest'], v2);
  const record = JSON.parse(await readFile(join(home, 'releases.json'), 'utf8'));
  assert.equal(record.tags['app:latest'].release, r2);
});

test('a secret key given where a public key belongs is refused, on the command line and in trust/', async () => {
  const home = await customer();
  const r = await bp(home, ['apply', at('latest-2.bpk'), '--trust', s.key]);
  assert.equal(r.code, 8, r.stderr);
  assert.match(r.stderr, /vendor\.key: a private \(secret\) key where a public key belongs/);
  await mkdir(join(home, 'trust'));
  await writeFile(join(home, 'trust', 'vendor.pub'), await readFile(s.key));
  const t = await bp(home, ['apply', at('latest-2.bpk')]);
  assert.equal(t.code, 8, t.stderr);
  assert.match(t.stderr, /trust\/vendor\.pub: a private \(secret\) key/);
  await writeFile(join(home, 'trust', 'vendor.pub'), await readFile(s.pub));
  await bpOk(home, ['apply', at('latest-2.bpk')]);
});

test('materialize refuses to replace an existing archive file unless --force, and sweeps dead temp files beside it', async () => {
  const home = await customer();
  const out = at('precious.txt');
  await writeFile(out, 'precious\n');
  const r = await bp(home, ['materialize', 'app:1', `docker-archive:${out}`]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /precious\.txt already exists; refusing to replace it \(--force/);
  assert.equal(await readFile(out, 'utf8'), 'precious\n');
  const oci = await bp(home, ['materialize', 'app:1', `oci-archive:${out}`]);
  assert.equal(oci.code, 2, oci.stderr);
  // a killed materialize left a temp file (its pid is gone); a live writer's stays
  const dead = join(s.dir, `.precious.txt.tmp-${await deadPid()}-0badf00d`);
  const live = join(s.dir, `.precious.txt.tmp-${process.pid}-0badf00d`);
  await writeFile(dead, 'half');
  await writeFile(live, 'being written');
  await bpOk(home, ['materialize', 'app:1', `docker-archive:${out}`, '--force']);
  assert.equal(existsSync(dead), false);
  assert.equal(existsSync(live), true);
  await rm(live);
  const image = JSON.parse((await run('skopeo', ['inspect', `docker-archive:${out}`])).stdout);
  assert.equal(image.Layers.length, 3);
});

test('a corrupt blob the bundle carries is replaced by re-applying it (apply hashes what it would skip)', async () => {
  const home = await customer();
  await bpOk(home, ['apply', at('app-2.bpk')]);
  const m = await bundleManifest(at('app-2.bpk'));
  const jar = m.blobs.find((b) => b.size === s.changedJar)!;
  await flipByte(blobPath(home, jar.digest), 1000);
  const r = JSON.parse((await bpOk(home, ['apply', at('app-2.bpk'), '--json'])).stdout);
  assert.equal(r.blobs.healed, 1);
  assert.ok(r.bytesChecked >= jar.size, `${r.bytesChecked} bytes hashed`);
  const fsck = JSON.parse((await bpOk(home, ['fsck', '--json'])).stdout);
  assert.equal(fsck.ok, true);
  // nothing corrupt: a re-apply still changes nothing
  const again = JSON.parse((await bpOk(home, ['apply', at('app-2.bpk'), '--json'])).stdout);
  assert.equal(again.noop, true);
  assert.equal(again.blobs.healed, 0);
});

test('fsck --repair quarantines a corrupt blob; the next apply brings it back; materialize says only what it hashed', async () => {
  const home = await customer();
  const { manifest } = await blockFormImage(home, 'app:1');
  const block = manifest.blocks[0];
  await flipByte(blobPath(home, block.digest), 10);
  // silent corruption under a layer recorded as verified: copied unhashed, and said so
  const quick = await bpOk(home, ['materialize', 'app:1', `docker-archive:${at('rotten.tar')}`]);
  assert.doesNotMatch(quick.stdout, /every layer matches/);
  assert.match(quick.stdout, /\d of 3 layers hashed and match their diff_ids; the others were verified before and copied unhashed/);
  assert.match(quick.stdout, /^ +1  /m, 'layers are numbered from 1');
  const repaired = await bp(home, ['fsck', '--repair', '--json']);
  assert.equal(repaired.code, 6, 'the image now lacks the blob: EMISSING');
  const report = JSON.parse(repaired.stdout);
  assert.equal(report.quarantined.length, 1);
  assert.ok(existsSync(join(home, 'quarantine', 'sha256', block.digest.slice(7))));
  assert.equal(existsSync(blobPath(home, block.digest)), false);
  assert.match(repaired.stderr, /^\{"error":\{"code":"EMISSING"/, '--json errors are JSON');
  await bpOk(home, ['apply', at('app-1.bpk')]);
  assert.equal(JSON.parse((await bpOk(home, ['fsck', '--json'])).stdout).ok, true);
  const whole = await bpOk(home, ['materialize', 'app:1', `docker-archive:${at('healed.tar')}`, '--verify']);
  assert.match(whole.stdout, /every layer matches its diff_id/);
});

test('a failed oci: materialize leaves no temp file in the layout, and umoci gc passes', async () => {
  const home = await customer();
  const layout = at('failed-layout');
  await bpOk(home, ['materialize', 'app:1', `oci:${layout}:good`]);
  const { manifest } = await blockFormImage(home, 'app:1');
  await rm(join(layout, 'blobs'), { recursive: true });
  await rm(join(layout, 'index.json'));
  for (const [i, block] of [manifest.blocks[0], manifest.blocks.at(-1)].entries()) {
    await flipByte(blobPath(home, block.digest), 10);
    for (const compress of ['none', 'gzip', 'zstd']) {
      const r = await bp(home, ['materialize', 'app:1', `oci:${layout}:${compress}${i}`, '--compress', compress]);
      assert.equal(r.code, 4, r.stderr);
      assert.deepEqual(await tempFilesIn(layout), [], `${compress}, block ${i}`);
    }
    await flipByte(blobPath(home, block.digest), 10);
  }
  await run('umoci', ['gc', '--layout', layout]);
});

test('several bundles on one apply line are applied one after the other; a volume without its predecessor is refused', async () => {
  const home = at('multi');
  const r = JSON.parse((await bpOk(home, ['apply', at('app-1.bpk'), at('app-2.bpk'), at('worker-1.bpk'), '--json'])).stdout);
  assert.equal(r.length, 3);
  assert.deepEqual(Object.keys(await tagged(home)).sort(), ['app:1', 'app:2', 'worker:1']);
  const bad = await bp(at('multi-2'), ['apply', at('x.bpk.002')]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /volume 2 of .*x\.bpk given without volume 1/);
});

test('a missing base names the image the bundle was made against', async () => {
  const home = at('no-base');
  await mkdir(home);
  const r = await bp(home, ['apply', at('app-2.bpk')]);
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /needs app:1 \(sha256:[0-9a-f]{64}\), which this store lacks/);
});

test('a missing volume is named: in the middle, and at the end', async () => {
  const split = at('vol.bpk');
  const w = JSON.parse((await bpOk(s.vendor, ['bundle', '--to', 'app:2', '-o', split, '--split', '1M', '--json'])).stdout);
  assert.ok(w.written.files.length >= 4, `${w.written.files.length} volumes`);
  const third = `${split}.003`;
  const saved = await readFile(third);
  await rm(third);
  const mid = await bp(at('vol-home'), ['apply', `${split}.001`]);
  assert.equal(mid.code, 3, mid.stderr);
  assert.match(mid.stderr, /volume 3 of .*vol\.bpk is missing \(found volumes 1-2 and 4/);
  await writeFile(third, saved);
  const last = w.written.files.at(-1);
  const fourth = `${split}.00${w.written.files.length - 1}`;
  await rm(last);
  const end = await bp(at('vol-home'), ['apply', `${split}.001`]);
  assert.equal(end.code, 3, end.stderr);
  assert.match(end.stderr, new RegExp(`volume ${w.written.files.length} of .*vol\\.bpk is missing`));
  assert.ok(existsSync(fourth));
  const tiny = await bp(s.vendor, ['bundle', '--to', 'app:2', '-o', at('tiny.bpk'), '--split', '100']);
  assert.equal(tiny.code, 2, tiny.stderr);
  assert.match(tiny.stderr, /at least 1M/);
});

test('rmi with an unknown name is all or nothing: nothing is untagged, every unknown name is named, exit 3', async () => {
  const home = at('rmi');
  await bpOk(home, ['apply', at('app-1.bpk'), at('app-2.bpk')]);
  const r = await bp(home, ['rmi', 'app:1', 'nope:1', 'app:2', 'gone:2']);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'blockport: no image nope:1, gone:2 in the store (nothing removed)\n');
  assert.deepEqual(Object.keys(await tagged(home)).sort(), ['app:1', 'app:2']);
  const j = await bp(home, ['rmi', 'app:1', 'nope:1', '--json']);
  assert.equal(j.code, 3);
  assert.deepEqual(JSON.parse(j.stderr).error.code, 'ENOTFOUND');
  assert.match((await bpOk(home, ['rmi', 'app:1', 'app:2'])).stdout, /untagged app:1\nuntagged app:2/);
  assert.deepEqual(await tagged(home), {});
});

test('apply --dry-run tells the tags and blobs a bundle would bring, and writes nothing', async () => {
  const home = await customer();
  const before = await storeState(home);
  const r = JSON.parse((await bpOk(home, ['apply', at('app-2.bpk'), '--dry-run', '--json'])).stdout);
  assert.equal(r.dryRun, true);
  assert.deepEqual(r.targets.map((t: { name: string; changed: boolean }) => [t.name, t.changed]), [['app:2', true]]);
  const m = await bundleManifest(at('app-2.bpk'));
  assert.equal(r.blobs.add, m.blobs.length);
  assert.equal(r.blobs.addBytes, m.blobs.reduce((k, b) => k + b.size, 0));
  assert.deepEqual(await storeState(home), before);
  const text = await bpOk(home, ['apply', at('app-2.bpk'), '--dry-run']);
  assert.match(text.stdout, /dry run of .*nothing written\nblobs: \d+ to add/);
  assert.match(text.stdout, /app:2 -> [0-9a-f]{12} \(new\)/);
  // the same refusals as apply itself
  const empty = at('dry-empty');
  await mkdir(empty);
  assert.equal((await bp(empty, ['apply', at('app-2.bpk'), '--dry-run'])).code, 6);
  assert.deepEqual(await readdir(empty), []);
});

test('system errors are one line naming the path; --json errors are JSON with the same exit code', async () => {
  const home = await customer();
  const dir = at('a-folder');
  await mkdir(dir);
  const r = await bp(home, ['apply', dir]);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /a-folder: is a directory/);
  assert.doesNotMatch(r.stderr, /EISDIR/);
  const j = await bp(home, ['apply', dir, '--json']);
  assert.equal(j.code, r.code);
  const e = JSON.parse(j.stderr).error;
  assert.equal(e.exitCode, r.code);
  assert.match(e.message, /a-folder: is a directory/);
  await writeFile(at('a-file'), 'x');
  const m = await bp(home, ['materialize', 'app:1', `docker-archive:${join(at('a-file'), 'x.tar')}`]);
  assert.equal(m.stderr.trim().split('\n').length, 1, m.stderr);
  assert.doesNotMatch(m.stderr, /ENOTDIR/);
  assert.match(m.stderr, /a-file\/x\.tar: a part of this path is a file/);
});

test('a full disk while copy threads write a docker-archive: exit 10 naming the file, nothing left', async (t) => {
  const mnt = at('small-disk');
  await mkdir(mnt);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
  } catch {
    t.skip('cannot mount a tmpfs here');
    return;
  }
  try {
    const home = await customer();
    const out = join(mnt, 'app-1.tar');
    const r = await bp(home, ['materialize', 'app:1', `docker-archive:${out}`]);
    assert.equal(r.code, 10, r.stderr);
    assert.equal(r.stderr, `blockport: no space left on device while writing ${out}\n`);
    assert.deepEqual(await readdir(mnt), []);
  } finally {
    await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
  }
});

test('a disk that fills up during a first apply leaves a valid layout (oci-layout, index.json), nothing staged', async (t) => {
  const mnt = at('small-disk-2');
  await mkdir(mnt);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]);
  } catch {
    t.skip('cannot mount a tmpfs here');
    return;
  }
  try {
    const home = join(mnt, 'store');
    const r = await bp(home, ['apply', at('app-1.bpk')]);
    assert.equal(r.code, 10, r.stderr);
    assert.match(r.stderr, /^blockport: no space left on device while writing /);
    assert.deepEqual((await readdir(home)).filter((f) => !f.startsWith('.')).sort(), ['blobs', 'index.json', 'oci-layout']);
    assert.equal(JSON.parse((await bp(home, ['fsck', '--json'])).stdout).ok, true);
  } finally {
    await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
  }
});
