/**
 * `bundle --delta` end to end: a vendor bumps lib-foo-1.2.jar (a ~2 MB jar) to lib-foo-1.3.jar with
 * a few KB changed, and edits another jar in place. The delta bundle carries patches instead of
 * the jars, the customer holding v1 rebuilds v2 byte for byte, and a customer lacking a patch's
 * base is refused before anything is written.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { diffIdsOf, pseudoRandom, readImage, run, tempDir, type FsNode } from './fixtures/images.js';
import { bp, bpOk, bundleManifest, copyDir, refusedApply, storeState, twoReleases } from './bundle-helpers.js';

const JAR = 2_000_000;
let dir: string;
let cleanup: () => Promise<void>;
let vendor: string;
let oci: string;
/** A customer store holding app:1 only. */
let customerV1: string;
let plainBundle: string;
let deltaBundle: string;

/** `bytes` with `n` bytes at `at` replaced by other pseudo-random bytes. */
function edited(bytes: Buffer, at: number, n: number, seed: number): Buffer {
  const out = Buffer.from(bytes);
  Buffer.concat([...pseudoRandom(n, seed)]).copy(out, at);
  return out;
}

function jarsTree(version: 1 | 2, foo: Buffer, bar: Buffer): FsNode[] {
  const v2 = version === 2;
  return [
    { path: 'usr/share/java/README.txt', type: 'file', content: 'jars\n' },
    { path: `usr/share/java/lib-foo-1.${v2 ? 3 : 2}.jar`, type: 'file', content: v2 ? edited(edited(foo, 700_000, 3000, 11), 1_500_000, 1000, 12) : foo },
    { path: 'usr/share/java/bar.jar', type: 'file', content: v2 ? edited(bar, 100_000, 2000, 13) : bar },
    { path: 'usr/share/java/same.jar', type: 'file', content: { size: 300_000, seed: 14 } },
    // a new jar with no older version: sent as is
    ...(v2 ? [{ path: 'usr/share/java/new.jar', type: 'file' as const, content: { size: 50_000, seed: 15 } }] : []),
  ];
}

before(async () => {
  ({ dir, cleanup } = await tempDir('bundle-delta'));
  const at = (n: string) => join(dir, n);
  const foo = Buffer.concat([...pseudoRandom(JAR, 1)]);
  const bar = Buffer.concat([...pseudoRandom(600_000, 2)]);
  const trees: Record<string, FsNode[]> = {
    base: [{ path: 'etc/os-release', type: 'file', content: 'ID=fixture\n' }],
    jars1: jarsTree(1, foo, bar),
    jars2: jarsTree(2, foo, bar),
    app1: [{ path: 'app/config.yml', type: 'file', content: 'version: 1\n' }],
    app2: [{ path: 'app/config.yml', type: 'file', content: 'version: 2\n' }],
  };
  ({ oci, vendor, customerV1 } = await twoReleases(dir, trees, ['base', 'jars1', 'app1'], ['base', 'jars2', 'app2']));
  plainBundle = at('plain.bpk');
  deltaBundle = at('delta.bpk');
  await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', plainBundle]);
  await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--delta', '-o', deltaBundle]);
});
after(() => cleanup?.());

test('--delta ships the bumped and the edited jar as patches: the bundle is far smaller', async () => {
  const plain = (await stat(plainBundle)).size;
  const delta = (await stat(deltaBundle)).size;
  console.log(`bundle --since app:1: ${plain} bytes; with --delta: ${delta} bytes`);
  assert.ok(plain > JAR + 600_000, `the plain bundle carries both jars (${plain})`);
  assert.ok(delta < plain / 5, `delta ${delta} vs plain ${plain}`);
  const m = await bundleManifest(deltaBundle);
  const patched = m.blobs.filter((b) => b.encoding === 'zstd-patch') as unknown as { size: number; storedSize: number; mediaType: string; base: { digest: string; size: number } }[];
  // both jars, and the (uncompressed) block-form layer that imports them, against v1's layer
  const blocks = patched.filter((b) => b.mediaType.startsWith('application/vnd.blockport.block'));
  assert.deepEqual(blocks.map((b) => b.size).sort((a, b) => a - b), [600_000, JAR]);
  assert.ok(patched.length - blocks.length <= 1, 'at most the jars layer besides');
  for (const b of patched) {
    assert.ok(b.storedSize < 16_000, `a patch of a few KB (${b.storedSize})`);
    assert.ok((m.prerequisites as { digest: string }[]).some((x) => x.digest === b.base.digest), 'each base is a prerequisite');
  }
  assert.ok(m.blobs.some((b) => b.size === 50_000 && b.encoding === 'none'), 'the new jar travels as is');
});

test('--dry-run --delta reports the patches beside the plain sizes, and writes nothing', async () => {
  const r = JSON.parse((await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--delta', '--dry-run', '--json'])).stdout);
  assert.equal(r.written, undefined);
  const byPath = Object.fromEntries(r.deltas.blobs.map((b: { path: string }) => [b.path, b]));
  assert.equal(byPath['/usr/share/java/lib-foo-1.3.jar'].base.path, '/usr/share/java/lib-foo-1.2.jar');
  assert.equal(byPath['/usr/share/java/lib-foo-1.3.jar'].match, 'stem');
  assert.equal(byPath['/usr/share/java/bar.jar'].match, 'path');
  assert.ok(r.deltas.bytes < r.plan.sizes.send / 5, `${r.deltas.bytes} with deltas vs ${r.plan.sizes.send}`);
  const text = (await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--delta', '--dry-run'])).stdout;
  assert.match(text, /THIS BUNDLE\s+WITH DELTAS\s+SAVING/);
  assert.match(text, /lib-foo-1\.3\.jar\s+2\.0 MB\s+->\s+[\d.]+ kB\s+from \/usr\/share\/java\/lib-foo-1\.2\.jar \(stem\)/);
});

test('applied to a store holding v1, the delta bundle gives the vendor\'s exact v2', async () => {
  const home = join(dir, 'c-apply');
  await copyDir(customerV1, home);
  const r = JSON.parse((await bpOk(home, ['apply', deltaBundle, '--json'])).stdout);
  assert.deepEqual(r.targets.map((t: { name: string }) => t.name), ['app:2']);
  const out = join(dir, 'v2-out');
  await bpOk(home, ['materialize', 'app:2', `oci:${out}:2`]);
  assert.deepEqual(await diffIdsOf(out, '2'), (await readImage(oci, '2')).config.rootfs.diff_ids);
  assert.equal((await readImage(out, '2')).manifest.config.digest, (await readImage(oci, '2')).manifest.config.digest);
  assert.equal(JSON.parse((await bpOk(home, ['fsck', '--json'])).stdout).ok, true);
});

test('a delta bundle applied to a store lacking a patch\'s base is refused before writing (exit 6)', async () => {
  const home = join(dir, 'c-nobase');
  await copyDir(customerV1, home);
  const m = await bundleManifest(deltaBundle);
  const base = (m.blobs.find((b) => b.encoding === 'zstd-patch') as unknown as { base: { digest: string } }).base.digest;
  await rm(join(home, 'blobs', 'sha256', base.slice(7)));
  const before = await storeState(home);
  const r = await bp(home, ['apply', deltaBundle]);
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, new RegExp(`needs 1 blob\\(s\\) this store lacks.*${base}`));
  assert.deepEqual(await storeState(home), before);
});

test('without the zstd command, --delta and applying a delta fail with one clear line (exit 11)', async () => {
  const noTools = { PATH: join(dir, 'no-tools') };
  const made = await bp(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--delta', '--no-compress', '-o', join(dir, 'x.bpk')], noTools);
  assert.equal(made.code, 11, made.stderr);
  assert.match(made.stderr, /^blockport: delta of sha256:[0-9a-f]{64} needs the 'zstd' command/);
  const home = join(dir, 'c-notools');
  await copyDir(customerV1, home);
  const before = await storeState(home);
  const r = await bp(home, ['apply', deltaBundle], noTools);
  assert.equal(r.code, 11, r.stderr);
  assert.match(r.stderr, /needs the 'zstd' command/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.deepEqual(await storeState(home), before);
});

/** Pairs of 3 MB and more go to xdelta3: lib-foo (2 x 2 MB) becomes vcdiff, bar.jar (2 x 600 kB) stays zstd-patch. */
const SMALL_LIMIT = { BLOCKPORT_ZSTD_PATCH_LIMIT: '3000000' };
let vcdiffBundle: Promise<string> | undefined;
function withVcdiff(): Promise<string> {
  return (vcdiffBundle ??= (async () => {
    const file = join(dir, 'vcdiff.bpk');
    await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--delta', '-o', file], SMALL_LIMIT);
    return file;
  })());
}

/** The bundle with `n` bytes flipped in the middle of the member `name`. */
/** Applies `file` to a copy of the v1 store, expecting one line of error and no visible change. */
const refused = (name: string, file: string, code: number, message: RegExp, env: NodeJS.ProcessEnv = {}) => refusedApply(customerV1, join(dir, name), file, code, message, { env });

async function flippedMember(file: string, name: string, n: number): Promise<string> {
  const b = await readFile(file);
  const header = b.indexOf(Buffer.from(`${name}\0`, 'latin1'));
  assert.ok(header > 0 && header % 512 === 0, `member ${name} found`);
  const size = Number.parseInt(b.subarray(header + 124, header + 136).toString('latin1'), 8);
  for (let i = 0; i < n; i++) b[header + 512 + Math.floor(size / 2) + i] ^= 0x5a;
  const out = join(dir, `flipped-${n}.bpk`);
  await writeFile(out, b);
  return out;
}

test('above the zstd limit a jar travels as vcdiff, and applied to v1 it gives the exact v2', async () => {
  const file = await withVcdiff();
  const m = await bundleManifest(file);
  const enc = (size: number) => m.blobs.filter((b) => b.size === size).map((b) => b.encoding);
  assert.deepEqual(enc(JAR), ['vcdiff']);
  assert.deepEqual(enc(600_000), ['zstd-patch']);
  const jar = m.blobs.find((b) => b.encoding === 'vcdiff')!;
  assert.ok(jar.storedSize < 16_000, `a vcdiff of a few KB (${jar.storedSize})`);
  const home = join(dir, 'c-vcdiff');
  await copyDir(customerV1, home);
  await bpOk(home, ['apply', file]);
  const out = join(dir, 'v2-vcdiff');
  await bpOk(home, ['materialize', 'app:2', `oci:${out}:2`]);
  assert.deepEqual(await diffIdsOf(out, '2'), (await readImage(oci, '2')).config.rootfs.diff_ids);
  assert.equal(JSON.parse((await bpOk(home, ['fsck', '--json'])).stdout).ok, true);
});

test('a corrupted vcdiff member fails the apply with one line and changes nothing (exit 4)', async () => {
  const file = await withVcdiff();
  const jar = (await bundleManifest(file)).blobs.find((b) => b.encoding === 'vcdiff')!;
  const member = `blobs/sha256/${jar.digest.slice(7)}.vcdiff`;
  for (const n of [1, 64]) {
    await refused(`c-corrupt-${n}`, await flippedMember(file, member, n), 4, new RegExp(`^blockport: .*${jar.digest.slice(7)}(\\.vcdiff: xdelta3 failed|: digest mismatch)`));
  }
});

test('without the xdelta3 command, a vcdiff delta fails to bundle and to apply with one clear line (exit 11)', async () => {
  const onlyZstd = join(dir, 'only-zstd');
  await mkdir(onlyZstd, { recursive: true });
  await symlink((await run('sh', ['-c', 'command -v zstd'])).stdout.trim(), join(onlyZstd, 'zstd'));
  const env = { PATH: onlyZstd };
  const made = await bp(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--delta', '-o', join(dir, 'y.bpk')], { ...env, ...SMALL_LIMIT });
  assert.equal(made.code, 11, made.stderr);
  assert.match(made.stderr, /^blockport: delta of sha256:[0-9a-f]{64} needs the 'xdelta3' command \(apt-get install xdelta3\)$/m);
  await refused('c-noxdelta', await withVcdiff(), 11, /needs the 'xdelta3' command \(apt-get install xdelta3\)/, env);
});
