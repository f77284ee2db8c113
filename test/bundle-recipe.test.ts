/**
 * Recipes end to end: v2 rebuilds a layer of 400 small files (a JRE-like folder) with one of them
 * changed. Blockified, the layer is block form; `bundle --since v1` carries it as a recipe of a few
 * KB that copies the unchanged files from v1's layer, the customer holding v1 rebuilds v2 byte for
 * byte, and a damaged recipe or base fails the apply with one line, the store unchanged.
 */
import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { diffIdsOf, readImage, tempDir, type FsNode } from './fixtures/images.js';
import { bpOk, bundleManifest, copyDir, refusedApply, twoReleases } from './bundle-helpers.js';

interface RecipeBlob {
  digest: string;
  size: number;
  mediaType: string;
  encoding: string;
  storedSize: number;
  bases?: { digest: string; size: number }[];
}

const FILES = 400;
const CHANGED = 123;
let dir: string;
let cleanup: () => Promise<void>;
let vendor: string;
let oci: string;
let customerV1: string;
let recipeBundle: string;
let plainBundle: string;

/** usr/lib/jvm/...: FILES small files (1-3 kB, below any blockify threshold) and one 300 kB jar. */
function jreTree(version: 1 | 2): FsNode[] {
  const nodes: FsNode[] = [{ path: 'usr/lib/jvm/lib/rt.jar', type: 'file', content: { size: 300_000, seed: 7 } }];
  for (let i = 0; i < FILES; i++) {
    const v2 = version === 2 && i === CHANGED;
    nodes.push({ path: `usr/lib/jvm/lib/m${i}/part-${i}.bin`, type: 'file', content: { size: 1000 + ((i * 37) % 2000) + (v2 ? 5 : 0), seed: v2 ? 9999 : 1000 + i } });
  }
  return nodes;
}

before(async () => {
  ({ dir, cleanup } = await tempDir('bundle-recipe'));
  const at = (n: string) => join(dir, n);
  const trees: Record<string, FsNode[]> = {
    base: [{ path: 'etc/os-release', type: 'file', content: 'ID=fixture\n' }],
    jre1: jreTree(1),
    jre2: jreTree(2),
  };
  ({ oci, vendor, customerV1 } = await twoReleases(dir, trees, ['base', 'jre1'], ['base', 'jre2']));
  recipeBundle = at('recipe.bpk');
  plainBundle = at('plain.bpk');
  await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', recipeBundle]);
  await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--no-recipes', '-o', plainBundle]);
});
after(() => cleanup?.());

async function recipes(file: string): Promise<{ blobs: RecipeBlob[]; prerequisites: { digest: string; size: number }[] }> {
  const m = (await bundleManifest(file)) as unknown as { blobs: RecipeBlob[]; prerequisites: { digest: string; size: number }[] };
  return { blobs: m.blobs.filter((b) => b.encoding === 'recipe'), prerequisites: m.prerequisites };
}

/** Applies `file` to a copy of the v1 store, expecting one line of error and no visible change. */
const refused = (name: string, file: string, code: number, message: RegExp, damage?: (home: string) => Promise<void>) => refusedApply(customerV1, join(dir, name), file, code, message, { damage });

test('the rebuilt layer travels as a recipe far smaller than the layer; its base is a prerequisite', async () => {
  const { blobs, prerequisites } = await recipes(recipeBundle);
  assert.equal(blobs.length, 1, JSON.stringify(blobs));
  const [layer] = blobs;
  assert.equal(layer.mediaType, 'application/vnd.blockport.layer.v1.tar');
  assert.ok(layer.size > FILES * 1500, `the layer holds the small files (${layer.size})`);
  assert.ok(layer.storedSize < 8000, `a recipe of a few kB (${layer.storedSize} for a ${layer.size}-byte layer)`);
  for (const b of layer.bases!) assert.ok(prerequisites.some((p) => p.digest === b.digest && p.size === b.size), 'each base is a prerequisite');
  const plain = (await stat(plainBundle)).size;
  const recipe = (await stat(recipeBundle)).size;
  console.log(`bundle --since app:1: ${recipe} bytes; --no-recipes: ${plain} bytes`);
  assert.ok(recipe < plain - layer.size / 2, `${recipe} vs ${plain}`);
  const r = JSON.parse((await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', join(dir, 'j.bpk'), '--json'])).stdout);
  assert.deepEqual(r.written.recipes, { blobs: 1, rawBytes: layer.size, storedBytes: layer.storedSize });
  const text = (await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', join(dir, 't.bpk')])).stdout;
  assert.match(text, /; 1 as recipes: [\d.]+ [kM]B -> [\d.]+ kB\)/);
});

test('--no-compress sends no recipe: blobs travel as they are', async () => {
  const file = join(dir, 'raw.bpk');
  await bpOk(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '--no-compress', '-o', file]);
  assert.deepEqual((await bundleManifest(file)).blobs.map((b) => b.encoding).filter((e) => e !== 'none'), []);
});

test('applied to a store holding v1, the recipe bundle gives the vendor\'s exact v2', async () => {
  const home = join(dir, 'c-apply');
  await copyDir(customerV1, home);
  await bpOk(home, ['apply', recipeBundle]);
  const out = join(dir, 'v2-out');
  await bpOk(home, ['materialize', 'app:2', `oci:${out}:2`]);
  assert.deepEqual(await diffIdsOf(out, '2'), (await readImage(oci, '2')).config.rootfs.diff_ids);
  assert.equal(JSON.parse((await bpOk(home, ['fsck', '--json'])).stdout).ok, true);
});

test('a corrupted recipe member fails the apply with one line and changes nothing (exit 4)', async () => {
  const [layer] = (await recipes(recipeBundle)).blobs;
  const b = await readFile(recipeBundle);
  const name = `blobs/sha256/${layer.digest.slice(7)}.recipe`;
  const header = b.indexOf(Buffer.from(`${name}\0`, 'latin1'));
  assert.ok(header > 0 && header % 512 === 0, `member ${name} found`);
  for (let i = 0; i < 8; i++) b[header + 512 + Math.floor(layer.storedSize / 2) + i] ^= 0x5a;
  const file = join(dir, 'flipped.bpk');
  await writeFile(file, b);
  await refused('c-flipped', file, 4, /\.recipe: /);
});

test('a damaged base in the store gives other bytes: the apply fails on the digest (exit 4)', async () => {
  const [layer] = (await recipes(recipeBundle)).blobs;
  const base = layer.bases![0].digest;
  await refused('c-damaged', recipeBundle, 4, new RegExp(`${layer.digest}|digest`), async (home) => {
    const p = join(home, 'blobs', 'sha256', base.slice(7));
    const bytes = await readFile(p);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    await rm(p);
    await writeFile(p, bytes);
  });
});

test('a store lacking a recipe\'s base is refused before anything is written (exit 6)', async () => {
  const [layer] = (await recipes(recipeBundle)).blobs;
  const base = layer.bases![0].digest;
  await refused('c-nobase', recipeBundle, 6, new RegExp(`this store lacks.*${base}`), (home) => rm(join(home, 'blobs', 'sha256', base.slice(7))));
});
