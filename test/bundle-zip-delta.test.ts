/**
 * `bundle --delta` with real zip files: a vendor bumps a library jar (a few classes edited), edits
 * the app jar in place and changes one nested jar of a Spring Boot style fat jar. The changed
 * jars travel as zip deltas (entries copied from the old jar, uncompressed entries patched and
 * re-deflated), the customer holding v1 gets the vendor's exact v2, and a bundle written the way
 * earlier versions wrote it (byte deltas only) still applies.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { diffIdsOf, readImage, tempDir, type FsNode } from './fixtures/images.js';
import { buildZip, codeLike, type ZipInput } from './fixtures/zip.js';
import { bpOk, bundleManifest, copyDir, refusedApply, twoReleases } from './bundle-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let vendor: string;
let oci: string;
let customerV1: string;
let zipBundle: string;
let byteBundle: string;

/** Class-like entries as `jar` writes them (data descriptors); changed ones get a few bytes edited. */
function classes(prefix: string, count: number, seed: number, changed: (i: number) => boolean): ZipInput[] {
  return Array.from({ length: count }, (_, i) => {
    const data = codeLike(2000 + ((i * 997) % 9000), seed * 1000 + i);
    if (changed(i)) data.write('edited in v2', 200);
    return { name: `${prefix}/C${i}.class`, data, descriptor: true };
  });
}

function jar(prefix: string, count: number, seed: number, changed: (i: number) => boolean = () => false): Buffer {
  return buildZip([{ name: 'META-INF/MANIFEST.MF', data: Buffer.from(`Manifest-Version: 1.0\nName: ${prefix}\n`), descriptor: true }, ...classes(prefix, count, seed, changed)]).bytes;
}

function fatJar(v: number): Buffer {
  return buildZip([
    { name: 'BOOT-INF/classes/app/Main.class', data: codeLike(6000, 5) },
    ...[1, 2, 3].map((k) => ({ name: `BOOT-INF/lib/dep${k}-1.0.jar`, data: jar(`dep${k}`, 120, 10 + k, (i) => v === 2 && k === 2 && i % 40 === 1), method: 'store' as const })),
  ]).bytes;
}

function jarsTree(v: number): FsNode[] {
  return [
    { path: `app/lib/lib-foo-1.${v + 1}.jar`, type: 'file', content: jar('foo', 400, 1, (i) => v === 2 && i % 50 === 7) },
    { path: 'app/app.jar', type: 'file', content: jar('app', 60, 2, (i) => v === 2 && i === 3) },
    { path: 'app/boot.jar', type: 'file', content: fatJar(v) },
    { path: 'app/lib/same.jar', type: 'file', content: jar('same', 50, 3) },
  ];
}

before(async () => {
  ({ dir, cleanup } = await tempDir('bundle-zip-delta'));
  const trees: Record<string, FsNode[]> = {
    base: [{ path: 'etc/os-release', type: 'file', content: 'ID=fixture\n' }],
    jars1: jarsTree(1),
    jars2: jarsTree(2),
  };
  ({ oci, vendor, customerV1 } = await twoReleases(dir, trees, ['base', 'jars1'], ['base', 'jars2']));
  zipBundle = join(dir, 'zip.bpk');
  byteBundle = join(dir, 'byte.bpk');
  await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--delta', '-o', zipBundle]);
  await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--delta', '-o', byteBundle], { BLOCKPORT_ZIP_DELTA: '0' });
});
after(() => cleanup?.());

test('the changed jars travel as zip deltas, much smaller than their byte deltas', async () => {
  const m = await bundleManifest(zipBundle);
  const old = await bundleManifest(byteBundle);
  const zips = m.blobs.filter((b) => b.encoding === 'zip-delta');
  assert.equal(zips.length, 3, 'lib-foo, app.jar and the fat jar');
  assert.ok(old.blobs.every((b) => b.encoding !== 'zip-delta'), 'BLOCKPORT_ZIP_DELTA=0 writes byte deltas only');
  const zipBytes = zips.reduce((n, b) => n + b.storedSize, 0);
  const byteBytes = old.blobs.filter((b) => zips.some((z) => z.digest === b.digest)).reduce((n, b) => n + b.storedSize, 0);
  console.log(`changed jars: byte deltas ${byteBytes} bytes, zip deltas ${zipBytes} bytes`);
  assert.ok(zipBytes < byteBytes / 3, `${zipBytes} vs ${byteBytes}`);
  assert.ok((await stat(zipBundle)).size < (await stat(byteBundle)).size);
});

async function applyAndCheck(file: string, name: string): Promise<void> {
  const home = join(dir, name);
  await copyDir(customerV1, home);
  await bpOk(home, ['apply', file]);
  for (const b of (await bundleManifest(file)).blobs) {
    const bytes = await readFile(join(home, 'blobs', 'sha256', b.digest.slice(7)));
    assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, b.digest, 'every block keeps its digest');
  }
  const out = join(dir, `${name}-out`);
  await bpOk(home, ['materialize', 'app:2', `oci:${out}:2`]);
  assert.deepEqual(await diffIdsOf(out, '2'), (await readImage(oci, '2')).config.rootfs.diff_ids);
  assert.equal(JSON.parse((await bpOk(home, ['fsck', '--json'])).stdout).ok, true);
}

test('applied to a store holding v1, the zip-delta bundle gives the vendor\'s exact v2', () => applyAndCheck(zipBundle, 'c-zip'));

test('a bundle written as earlier versions wrote it (byte deltas) still applies', () => applyAndCheck(byteBundle, 'c-byte'));

test('a damaged zip-delta member fails the apply with one line and changes nothing (exit 4)', async () => {
  const b = await readFile(zipBundle);
  const m = await bundleManifest(zipBundle);
  const z = m.blobs.find((x) => x.encoding === 'zip-delta')!;
  const header = b.indexOf(Buffer.from(`blobs/sha256/${z.digest.slice(7)}.zip-delta\0`, 'latin1'));
  assert.ok(header > 0);
  for (let i = 0; i < 32; i++) b[header + 512 + Math.floor(z.storedSize * 0.7) + i] ^= 0x5a;
  const file = join(dir, 'damaged.bpk');
  await writeFile(file, b);
  await refusedApply(customerV1, join(dir, 'c-damaged'), file, 4, new RegExp(`^blockport: .*${z.digest.slice(7)}`));
});
