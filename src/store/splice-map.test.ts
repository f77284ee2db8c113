import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Piece } from '../cas/copy-plan.js';
import { readPieces } from '../cas/copy-plan.js';
import { sha256, type Digest } from '../digest/digest.js';
import { VerifiedLayers } from './verified.js';

async function* from(pieces: Piece[]): AsyncGenerator<Piece> {
  yield* pieces;
}

async function bytesOf(pieces: AsyncIterable<Piece>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const b of readPieces(pieces)) out.push(Buffer.from(b));
  return Buffer.concat(out);
}

/** A store folder with two blobs, and a plan that takes literals and ranges of both. */
async function fixture() {
  const root = await fsp.mkdtemp(join(tmpdir(), 'blockport-map-'));
  const blobs = join(root, 'blobs', 'sha256');
  await fsp.mkdir(blobs, { recursive: true });
  const a = randomBytes(300_000);
  const b = randomBytes(5_000);
  const [da, db] = [sha256(a), sha256(b)];
  const pa = join(blobs, da.slice(7));
  const pb = join(blobs, db.slice(7));
  await fsp.writeFile(pa, a);
  await fsp.writeFile(pb, b);
  // adjacent ranges of one blob and literals back to back: the map joins them
  const plan: Piece[] = [Buffer.from('head'), { path: pa, offset: 0, size: 1000 }, { path: pa, offset: 1000, size: 99_000 }, Buffer.from('x'), Buffer.alloc(511), { path: pb, offset: 17, size: 4000 }, { path: pa, offset: 200_000, size: 100_000 }, Buffer.from('tail')];
  const sourceOf = (p: string) => (p === pa ? { digest: da, offset: 0 } : p === pb ? { digest: db, offset: 0 } : undefined);
  const expected = await bytesOf(from(plan));
  return { root, plan, sourceOf, expected, layer: sha256('layer') as Digest, diffId: sha256(expected) };
}

test('a layer recorded after its plan ran keeps a splice map that gives the same bytes', async () => {
  const f = await fixture();
  try {
    const v = new VerifiedLayers(f.root);
    assert.ok((await bytesOf(v.keepPlan(f.layer, from(f.plan), f.sourceOf, false))).equals(f.expected), 'the plan passes through unchanged');
    assert.equal(await v.plan(f.layer, f.expected.length), undefined, 'no map before the layer is recorded');
    await v.record(f.layer, f.diffId);
    const kept = await v.plan(f.layer, f.expected.length);
    assert.ok(kept, 'a map once recorded');
    const pieces: Piece[] = [];
    for await (const p of kept) pieces.push(p);
    assert.ok(pieces.length < f.plan.length, `${pieces.length} pieces for ${f.plan.length}: adjacent ones joined`);
    assert.ok((await bytesOf(from(pieces))).equals(f.expected));
    assert.equal(await new VerifiedLayers(f.root).plan(f.layer, f.expected.length + 1), undefined, 'a map of another size is not used');
    await v.forget(f.layer);
    assert.equal(await v.plan(f.layer, f.expected.length), undefined, 'forget removes the map with the record');
  } finally {
    await fsp.rm(f.root, { recursive: true, force: true });
  }
});

test('a damaged or cut splice map is ignored, and a plan that never ended or was never recorded leaves none', async () => {
  const f = await fixture();
  try {
    const v = new VerifiedLayers(f.root);
    await bytesOf(v.keepPlan(f.layer, from(f.plan), f.sourceOf, true));
    const map = join(v.dir, `${f.layer.slice(7)}.map`);
    const good = await fsp.readFile(map);
    for (const at of [0, 10, good.length - 40, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[at] ^= 1;
      await fsp.writeFile(map, bad);
      assert.equal(await v.plan(f.layer, f.expected.length), undefined, `byte ${at} flipped`);
    }
    await fsp.writeFile(map, good.subarray(0, good.length - 5));
    assert.equal(await v.plan(f.layer, f.expected.length), undefined, 'cut short');
    await fsp.writeFile(map, good);
    assert.ok(await v.plan(f.layer, f.expected.length), 'the good map is used');

    // a plan naming a file that holds no known blob, a plan stopped part-way, a layer never recorded
    const other = sha256('other') as Digest;
    await bytesOf(v.keepPlan(other, from(f.plan), () => undefined, true));
    for await (const _ of v.keepPlan(other, from(f.plan), f.sourceOf, true)) break;
    await bytesOf(v.keepPlan(other, from(f.plan), f.sourceOf, false));
    await v.dropPending();
    // a killed writer's temp file of a map goes when the layer's map is written again
    const dead = join(v.dir, `.${other.slice(7)}.map.tmp-2147483646-0badcafe`);
    await fsp.writeFile(dead, 'half a map');
    await bytesOf(v.keepPlan(other, from(f.plan), f.sourceOf, false));
    await v.dropPending();
    await v.record(other, f.diffId);
    assert.equal(await v.plan(other, f.expected.length), undefined);
    assert.deepEqual((await fsp.readdir(v.dir)).sort(), [`${f.layer.slice(7)}.map`, other.slice(7)].sort(), 'no temp file is left');
  } finally {
    await fsp.rm(f.root, { recursive: true, force: true });
  }
});
