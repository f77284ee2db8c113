import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { sha256, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { jsonBytes } from '../oci/json.js';
import { Annotation, MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { pickBlockBases, pickLayerBases, planDeltas, versionStem, type DeltaCandidate } from './delta.js';
import { zstdPatchLimit } from './delta-encode.js';
import { BUNDLE_MEDIA_TYPE, blobMember, parseBundleManifest } from './format.js';
import { patchedSizes } from './make-delta.js';
import { patchEncoding, patchLevel, patchTables, patchWindowLog, ZSTD_PATCH_LIMIT } from './patch.js';
import { openBundle } from './read.js';
import { writeBundle } from './write.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-delta-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** A block descriptor of `size` bytes annotated with `path`. */
function block(name: string, path: string | undefined, size: number, mediaType: string = MediaType.blockFile): Descriptor {
  return { mediaType, digest: sha256(name), size, ...(path ? { annotations: { [Annotation.blockPath]: path } } : {}) };
}

const match = (cs: DeltaCandidate[]) => cs.map((c) => [c.blob.digest, c.base.digest, c.match]);

test('versionStem drops dotted versions; the loose stem drops every digit run', () => {
  assert.equal(versionStem('/usr/share/java/lib-foo-1.2.jar'), '/usr/share/java/lib-foo-.jar');
  assert.equal(versionStem('/usr/share/java/guava-31.1-jre.jar'), '/usr/share/java/guava--jre.jar');
  assert.equal(versionStem('/usr/share/java/lib-3-1.3.0.jar'), '/usr/share/java/lib-3-.jar');
  assert.equal(versionStem('/usr/lib/libfoo2.so'), '/usr/lib/libfoo2.so');
  assert.equal(versionStem('/usr/lib/libfoo2.so', true), '/usr/lib/libfoo.so');
});

test('a block takes the held block at the same path first, of the same kind', () => {
  const held = [block('old', '/app/lib/a.jar', 100_000), block('stemmy', '/app/lib/a.jar', 100_000, MediaType.blockDir), block('other', '/app/lib/b.jar', 100_000)];
  const next = block('new', '/app/lib/a.jar', 101_000);
  assert.deepEqual(match(pickBlockBases([next], held)), [[next.digest, sha256('old'), 'path']]);
});

test('a bumped jar matches its version stem, preferring the closest size; a loose stem comes last', () => {
  const held = [
    block('foo-1.1', '/usr/share/java/lib-foo-1.1.jar', 500_000),
    block('foo-1.2', '/usr/share/java/lib-foo-1.2.jar', 2_000_000),
    block('libbar1', '/usr/lib/libbar1.so', 80_000),
  ];
  const foo = block('foo-1.3', '/usr/share/java/lib-foo-1.3.jar', 2_100_000);
  const bar = block('libbar2', '/usr/lib/libbar2.so', 90_000);
  assert.deepEqual(match(pickBlockBases([foo, bar], held)), [
    [foo.digest, sha256('foo-1.2'), 'stem'],
    [bar.digest, sha256('libbar1'), 'loose-stem'],
  ]);
});

test('no base: another name, no path annotation, a tiny block, or another kind', () => {
  const held = [block('old', '/usr/share/java/guava.jar', 100_000), block('dir', '/app/node_modules/left-pad/', 100_000, MediaType.blockDir)];
  const send = [
    block('n1', '/usr/share/java/jackson.jar', 100_000),
    block('n2', undefined, 100_000),
    block('n3', '/usr/share/java/guava.jar', 100),
    block('n4', '/app/node_modules/left-pad/', 100_000, MediaType.blockFile),
  ];
  assert.deepEqual(pickBlockBases(send, held), []);
});

test('a sent layer takes the held layer at the same index when the media types match', () => {
  const l = (name: string, mediaType: string = MediaType.blockLayerGzip) => ({ mediaType, digest: sha256(name), size: 50_000 });
  const v1 = { layers: [l('base'), l('deps1'), l('app1', MediaType.ociLayerGzip)], blocks: [] };
  const v2 = { layers: [l('base'), l('deps2'), l('app2')], blocks: [] };
  const send = new Set([sha256('deps2'), sha256('app2')]);
  const holds = new Set(v1.layers.map((x) => x.digest));
  assert.deepEqual(match(pickLayerBases(v2, [v1], send, holds)), [[sha256('deps2'), sha256('deps1'), 'layer']]);
  assert.deepEqual(pickLayerBases(v2, [v1], send, new Set<Digest>()), [], 'only a layer the receiver holds is a base');
});

test('planDeltas takes only sent blobs and held bases, each blob once', () => {
  const old = block('old', '/a.jar', 100_000);
  const shared = block('new', '/a.jar', 100_000);
  const t1 = { layers: [], blocks: [shared] };
  const t2 = { layers: [], blocks: [shared, block('kept', '/b.jar', 100_000)] };
  const held = [{ layers: [], blocks: [old, block('kept', '/b.jar', 100_000)] }];
  const cs = planDeltas([t1, t2], held, new Set([shared.digest]), new Set([old.digest, sha256('kept')]));
  assert.deepEqual(match(cs), [[shared.digest, old.digest, 'path']]);
  assert.deepEqual(planDeltas([t1], held, new Set([shared.digest]), new Set<Digest>()), [], 'a base the receiver lacks is no base');
});

test('patch level and window follow the sizes', () => {
  assert.equal(patchLevel(2_000_000), 19);
  assert.equal(patchLevel(24_000_000), 19);
  assert.equal(patchLevel(30 << 20), 9);
  assert.equal(patchLevel(100 << 20), 6);
  assert.deepEqual(patchTables(2_000_000), ['--zstd=hlog=20,clog=21']);
  assert.deepEqual(patchTables(24_000_000), ['--zstd=hlog=20,clog=22']);
  assert.equal(patchWindowLog(1 << 20, 1 << 20), 22);
  assert.equal(patchWindowLog(10, 10), 10);
  assert.equal(patchWindowLog(2 ** 31, 2 ** 31), 31);
});

test('a pair takes a zstd patch below the limit and VCDIFF from it on', () => {
  assert.equal(patchEncoding(30 << 20, 30 << 20), 'zstd-patch');
  assert.equal(patchEncoding(32 << 20, 32 << 20), 'vcdiff');
  assert.equal(patchEncoding(129_000_000, 129_000_000), 'vcdiff');
  assert.equal(patchEncoding(1000, 999, 2000), 'zstd-patch');
  assert.equal(patchEncoding(1000, 1000, 2000), 'vcdiff');
  assert.equal(zstdPatchLimit({}), ZSTD_PATCH_LIMIT);
  assert.equal(zstdPatchLimit({ BLOCKPORT_ZSTD_PATCH_LIMIT: '3000000' }), 3_000_000);
  assert.throws(() => zstdPatchLimit({ BLOCKPORT_ZSTD_PATCH_LIMIT: '3M' }), (e) => e instanceof BlockportError && e.code === 'EUSAGE');
});

test('bundle.json: a zstd-patch or vcdiff blob needs a base that is a prerequisite', () => {
  for (const [encoding, suffix] of [['zstd-patch', '.zst-patch'], ['vcdiff', '.vcdiff']]) {
    const base = { digest: sha256('base'), size: 10 };
    const blob = { digest: sha256('new'), size: 20, mediaType: MediaType.blockFile, encoding, storedSize: 5, base };
    const m = (prerequisites: unknown[], b: unknown = blob) => jsonBytes({ mediaType: BUNDLE_MEDIA_TYPE, version: 1, targets: [], prerequisites, blobs: [b] });
    assert.deepEqual(parseBundleManifest(m([base])).blobs[0].base, base);
    assert.equal(blobMember(blob as never), `blobs/sha256/${sha256('new').slice(7)}${suffix}`);
    const corrupt = (re: RegExp) => (e: unknown) => e instanceof BlockportError && e.code === 'ECORRUPT' && re.test(e.message);
    assert.throws(() => parseBundleManifest(m([])), corrupt(/base .* is not among the prerequisites/));
    assert.throws(() => parseBundleManifest(m([{ ...base, size: 11 }])), corrupt(/not among the prerequisites/));
    assert.throws(() => parseBundleManifest(m([base], { ...blob, base: undefined })), corrupt(new RegExp(`a ${encoding} blob names no base`)));
    assert.throws(() => parseBundleManifest(m([{ digest: sha256('new'), size: 10 }], { ...blob, base: { digest: sha256('new'), size: 10 } })), corrupt(/cannot be its own base/));
  }
});

/** A base of `size` bytes and a new version with two small regions changed, both as files in `dir`. */
async function versions(size = 1 << 20, files = new Map<Digest, string>()): Promise<{ base: Buffer; next: Buffer; files: Map<Digest, string> }> {
  const base = randomBytes(size);
  const next = Buffer.from(base);
  randomBytes(2000).copy(next, Math.floor(size * 0.3));
  randomBytes(500).copy(next, Math.floor(size * 0.85));
  for (const b of [base, next]) {
    const path = join(dir, sha256(b).slice(7));
    await writeFile(path, b);
    files.set(sha256(b), path);
  }
  return { base, next, files };
}

test('round trip: a patch member decodes against the base to the exact blob; smaller ones only', async () => {
  const { base, next, files } = await versions();
  const other = randomBytes(200_000);
  const baseD = { ...block('x', '/a.jar', base.length), digest: sha256(base) };
  const nextD = { ...block('y', '/a.jar', next.length), digest: sha256(next) };
  const otherD = { ...block('z', '/b.jar', other.length), digest: sha256(other) };
  const bytes = new Map([base, next, other].map((b) => [sha256(b), b]));
  const src = { open: async (d: Descriptor) => Readable.from([bytes.get(d.digest)!]), path: (d: Descriptor) => files.get(d.digest) };
  const candidates = [
    { blob: nextD, base: baseD, match: 'path' as const },
    { blob: otherD, base: baseD, match: 'stem' as const }, // unrelated: the patch is no smaller
  ];
  const file = join(dir, 'd.bpk');
  const r = await writeBundle({ targets: [], send: [nextD, otherD], prerequisites: [] }, src, file, { deltas: { candidates, bases: src } });
  assert.deepEqual(r.manifest.blobs.map((b) => b.encoding), ['zstd-patch', 'none']);
  assert.deepEqual(r.manifest.blobs[0].base, { digest: baseD.digest, size: base.length });
  assert.deepEqual(r.manifest.prerequisites, [{ digest: baseD.digest, size: base.length }]);
  assert.ok(r.manifest.blobs[0].storedSize < 5000, `patch of ${r.manifest.blobs[0].storedSize} bytes`);
  assert.deepEqual(r.deltas, { blobs: 1, rawBytes: next.length, storedBytes: r.manifest.blobs[0].storedSize });

  const opened = await openBundle([file], { basePath: (d) => files.get(d)! });
  const got: Buffer[] = [];
  for await (const e of opened.blobs()) got.push(Buffer.concat(await e.data().toArray()));
  assert.ok(got[0].equals(next) && got[1].equals(other));
  const blind = await openBundle([file]);
  for await (const e of blind.blobs()) if (e.blob.encoding === 'zstd-patch') assert.throws(() => e.data(), /needs its base blob/);
});

test('round trip: with a lower limit the big pair travels as vcdiff, the small one as zstd-patch', async () => {
  const small = await versions(256 << 10);
  const big = await versions(1 << 20, small.files);
  const desc = (b: Buffer, path: string) => ({ ...block('-', path, b.length), digest: sha256(b) });
  const bytes = new Map([small.base, small.next, big.base, big.next].map((b) => [sha256(b), b]));
  const src = { open: async (d: Descriptor) => Readable.from([bytes.get(d.digest)!]), path: (d: Descriptor) => big.files.get(d.digest) };
  const candidates = [
    { blob: desc(small.next, '/s.jar'), base: desc(small.base, '/s.jar'), match: 'path' as const },
    { blob: desc(big.next, '/b.jar'), base: desc(big.base, '/b.jar'), match: 'path' as const },
  ];
  const file = join(dir, 'v.bpk');
  const send = candidates.map((c) => c.blob);
  const r = await writeBundle({ targets: [], send, prerequisites: [] }, src, file, { deltas: { candidates, bases: src, zstdLimit: 1 << 20 } });
  assert.deepEqual(r.manifest.blobs.map((b) => b.encoding), ['zstd-patch', 'vcdiff']);
  assert.deepEqual(r.manifest.blobs[1].base, { digest: sha256(big.base), size: big.base.length });
  assert.ok(r.manifest.blobs[1].storedSize < 5000, `vcdiff of ${r.manifest.blobs[1].storedSize} bytes`);
  assert.equal(r.deltas.blobs, 2);
  assert.deepEqual([...patchedSizes(r.manifest.blobs).keys()], send.map((d) => d.digest));

  const opened = await openBundle([file], { basePath: (d) => big.files.get(d)! });
  const got: Buffer[] = [];
  for await (const e of opened.blobs()) got.push(Buffer.concat(await e.data().toArray()));
  assert.ok(got[0].equals(small.next) && got[1].equals(big.next));
  // decoded against the wrong base, a vcdiff member does not give the blob back
  const wrong = await openBundle([file], { basePath: () => big.files.get(sha256(small.base))! });
  for await (const e of wrong.blobs()) {
    if (e.blob.encoding !== 'vcdiff') continue;
    const out = await e.data().toArray().then((x) => Buffer.concat(x), (err: unknown) => err);
    assert.ok(!(out instanceof Buffer && out.equals(big.next)), 'the wrong base gives other bytes or an error');
  }
});
