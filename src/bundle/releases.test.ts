import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sha256, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { jsonBytes } from '../oci/json.js';
import { BUNDLE_MEDIA_TYPE, parseBundleManifest, type BundleManifest } from './format.js';
import { downgrades, Releases, refuseDowngrade } from './releases.js';
import { groupBundles } from './volumes.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-releases-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const img = (n: number) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(Buffer.from(`image ${n}`)), size: 100 + n });
const manifest = (targets: { name: string; n: number; release?: number }[]): BundleManifest =>
  ({ mediaType: BUNDLE_MEDIA_TYPE, version: 1, targets: targets.map((t) => ({ name: t.name, descriptor: img(t.n), ...(t.release === undefined ? {} : { release: t.release }) })), prerequisites: [], blobs: [] });
const bundle = sha256(Buffer.from('bundle')) as Digest;

test('a release older than the recorded one, or none at all, is a downgrade; equal or newer is not', async () => {
  const r = new Releases(join(dir, 'a'));
  assert.deepEqual(await r.read(), {}, 'no record: nothing applied yet');
  await mkdir(join(dir, 'a'));
  await r.record(manifest([{ name: 'app:latest', n: 2, release: 20 }, { name: 'old:1', n: 9 }]), bundle);
  const applied = await r.read();
  assert.deepEqual(Object.keys(applied), ['app:latest'], 'a target without release records nothing');
  assert.deepEqual(downgrades(manifest([{ name: 'app:latest', n: 3, release: 21 }]), applied), []);
  assert.deepEqual(downgrades(manifest([{ name: 'app:latest', n: 4, release: 20 }]), applied), []);
  assert.deepEqual(downgrades(manifest([{ name: 'other:1', n: 1, release: 1 }]), applied), [], 'another tag');
  const older = downgrades(manifest([{ name: 'app:latest', n: 1, release: 19 }]), applied);
  assert.equal(older.length, 1);
  const legacy = downgrades(manifest([{ name: 'app:latest', n: 1 }]), applied);
  assert.equal(legacy[0].release, undefined, 'a bundle from before releases counts as older');
  assert.throws(() => refuseDowngrade(older, 'x.bpk'), (e: unknown) => e instanceof BlockportError && e.code === 'EDOWNGRADE' && e.exitCode === 12 && /x\.bpk: app:latest release 19 is older than the release 20 applied before/.test(e.message));
  const text = JSON.parse(await readFile(r.file, 'utf8'));
  assert.equal(text.tags['app:latest'].bundle, bundle);
  await writeFile(r.file, 'not json');
  await assert.rejects(r.read(), /not JSON/);
});

test('bundle.json: a release must be a non-negative safe integer; a bundle without one still parses', () => {
  const parse = (m: unknown) => parseBundleManifest(jsonBytes(m));
  assert.equal(parse(manifest([{ name: 'a:1', n: 1 }])).targets[0].release, undefined);
  assert.equal(parse(manifest([{ name: 'a:1', n: 1, release: 1700000000000 }])).targets[0].release, 1700000000000);
  for (const bad of [-1, 1.5, '7', 2 ** 60]) {
    const m = manifest([{ name: 'a:1', n: 1 }]) as unknown as { targets: { release: unknown }[] };
    m.targets[0].release = bad;
    assert.throws(() => parse(m), /invalid release/);
  }
});

test('an apply line: each file is a bundle; FILE.002 after FILE.001 is its volume; a volume alone is refused', () => {
  assert.deepEqual(groupBundles(['a.bpk', 'b.bpk']), [['a.bpk'], ['b.bpk']]);
  assert.deepEqual(groupBundles(['a.bpk.001', 'a.bpk.002', 'b.bpk']), [['a.bpk.001', 'a.bpk.002'], ['b.bpk']]);
  assert.deepEqual(groupBundles(['a.bpk.001', 'b.bpk.001']), [['a.bpk.001'], ['b.bpk.001']]);
  assert.throws(() => groupBundles(['a.bpk.001', 'a.bpk.003']), /volume 3 of a\.bpk given without volume 2/);
  assert.throws(() => groupBundles(['a.bpk.002']), (e: unknown) => e instanceof BlockportError && e.code === 'EUSAGE');
});
