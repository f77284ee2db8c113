import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { FsBlobStore } from '../cas/blob-store.js';
import { sha256 } from '../digest/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';
import { openBundle } from './read.js';
import { planCopies } from './recipe-encode.js';
import { blobRanges, indexHeld, wantedOf } from './recipe-index.js';
import { writeBundle } from './write.js';

let dir: string;
let store: FsBlobStore;
const src = { open: (d: Descriptor) => store.open(d.digest, d.size), path: (d: Descriptor) => store.path(d.digest) };

function tar(files: [string, Buffer][]): Buffer {
  const parts = files.flatMap(([path, data]) => [encodeHeader({ path, type: 'file', size: data.length, mode: 0o644, mtime: 1_600_000_000 }), data, padding(data.length)]);
  return Buffer.concat([encodeHeader({ path: 'etc/', type: 'dir', mode: 0o755 }), ...parts, END_OF_ARCHIVE]);
}

const files: [string, Buffer][] = Array.from({ length: 40 }, (_, i) => [`usr/lib/f${i}.so`, randomBytes(2000 + i * 150)]);
const moved = randomBytes(9000);
const inBlock = randomBytes(20_000);
const v1 = tar([...files, ['usr/lib/old-name', moved]]);
// one file changed (other size, so other header), one renamed, one new that a held file block holds
const v2files: [string, Buffer][] = files.map(([p, b], i) => [p, i === 20 ? randomBytes(b.length + 10) : b]);
const v2 = tar([...v2files, ['usr/lib/new-name', moved], ['usr/lib/from-block', inBlock]]);
const desc = (b: Buffer, mediaType: string): Descriptor => ({ mediaType, digest: sha256(b), size: b.length });
const v1d = desc(v1, MediaType.blockLayer);
const v2d = desc(v2, MediaType.blockLayer);
const heldBlock = desc(inBlock, MediaType.blockFile);
// a new file block whose bytes are a file of the held layer
const asBlock = desc(files[39][1], MediaType.blockFile);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-recipe-enc-'));
  store = new FsBlobStore(join(dir, 'store'));
  for (const b of [v1, v2, inBlock, files[39][1]]) await store.put(Readable.from([b]));
});
after(() => rm(dir, { recursive: true, force: true }));

test('copies: unchanged runs of entries merge into one copy each; a renamed file copies its data', async () => {
  const ranges = await blobRanges(v2d, src);
  // held blobs read as streams (no files), the new one from its file: both ways give the same ranges
  const index = await indexHeld([v1d, heldBlock], { open: src.open }, wantedOf(ranges));
  const copies = planCopies(ranges, index);
  assert.deepEqual(copies.map((c) => [c.base.digest === v1d.digest ? 'v1' : 'block', c.size >= 2000]), [['v1', true], ['v1', true], ['v1', true], ['block', true]]);
  // the first run: the folder entry and files 0-19, whole entries, from the start of v1
  assert.equal(copies[0].at, 0);
  assert.equal(copies[0].offset, 0);
  const copied = copies.reduce((n, c) => n + c.size, 0);
  assert.ok(copied > v2.length - 10_000 - 2000 - 3 * 512 - 1024, `copied ${copied} of ${v2.length}`);
});

test('writeBundle with held blobs: the layer and the file block travel as recipes and decode exactly', async () => {
  const file = join(dir, 'r.bpk');
  const send = [v2d, asBlock];
  const r = await writeBundle({ targets: [], send, prerequisites: [] }, src, file, { recipes: { blobs: [v1d, heldBlock], source: src } });
  const [layer, block] = r.manifest.blobs;
  assert.equal(layer.encoding, 'recipe');
  assert.deepEqual(layer.bases, [{ digest: v1d.digest, size: v1d.size }, { digest: heldBlock.digest, size: heldBlock.size }]);
  assert.ok(layer.storedSize < 16_000, `the changed file and headers: ${layer.storedSize} of ${v2.length}`);
  assert.equal(block.encoding, 'recipe');
  assert.ok(block.storedSize < 100, `one copy: ${block.storedSize}`);
  assert.deepEqual(r.manifest.prerequisites, [{ digest: v1d.digest, size: v1d.size }, { digest: heldBlock.digest, size: heldBlock.size }]);
  assert.deepEqual(r.recipes, { blobs: 2, rawBytes: v2.length + asBlock.size, storedBytes: layer.storedSize + block.storedSize });
  const b = await openBundle([file], { basePath: (d) => store.path(d) });
  const got: Buffer[] = [];
  for await (const e of b.blobs()) got.push(Buffer.concat(await e.data().toArray()));
  assert.deepEqual(got, [v2, files[39][1]]);
});

test('without held blobs nothing is a recipe; with some, only what is shared is copied', async () => {
  const plain = await writeBundle({ targets: [], send: [v2d], prerequisites: [] }, src, join(dir, 'p.bpk'));
  assert.notEqual(plain.manifest.blobs[0].encoding, 'recipe');
  assert.deepEqual(plain.recipes, { blobs: 0, rawBytes: 0, storedBytes: 0 });
  const unrelated = tar([['x', randomBytes(50_000)]]);
  await store.put(Readable.from([unrelated]));
  const send = [v2d, desc(unrelated, MediaType.blockLayer)];
  const r = await writeBundle({ targets: [], send, prerequisites: [] }, src, join(dir, 'o.bpk'), { recipes: { blobs: [heldBlock], source: src } });
  const [layer, other] = r.manifest.blobs;
  assert.equal(layer.encoding, 'recipe');
  assert.deepEqual(layer.bases, [{ digest: heldBlock.digest, size: heldBlock.size }]);
  const zstd = plain.manifest.blobs[0].storedSize;
  assert.ok(layer.storedSize < zstd - 19_000 && layer.storedSize > zstd - 25_000, `all but the 20 kB file: ${layer.storedSize} vs ${zstd}`);
  assert.notEqual(other.encoding, 'recipe');
  assert.deepEqual(r.manifest.prerequisites, [{ digest: heldBlock.digest, size: heldBlock.size }]);
});
