import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { concatFiles, findVolumes, volumeName, writeVolumes } from './volumes.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-volumes-'));
});
after(() => rm(dir, { recursive: true, force: true }));

async function* chunks(data: Buffer, size: number) {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

const data = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) % 251));

test('split volumes hold at most SIZE bytes each and join back to the stream', async () => {
  const file = join(dir, 'b.bpk');
  const files = await writeVolumes(chunks(data, 777), file, 3000);
  assert.deepEqual(files, [1, 2, 3, 4].map((n) => volumeName(file, n)));
  const sizes = await Promise.all(files.map(async (f) => (await readFile(f)).length));
  assert.deepEqual(sizes, [3000, 3000, 3000, 1000]);
  assert.deepEqual(await collect(concatFiles(files)), data);
  assert.deepEqual(await findVolumes([files[0]]), files, 'the first volume finds the rest');
  assert.deepEqual(await findVolumes([file]), files, 'the base name finds the volumes');
  assert.deepEqual(await findVolumes([files[1]]), [files[1]], 'a later volume alone is taken as given');
});

test('a shorter rewrite removes stale volumes; no temp file is left', async () => {
  const file = join(dir, 'c.bpk');
  await writeVolumes(chunks(data, 1000), file, 2000);
  await writeVolumes(chunks(data.subarray(0, 2500), 1000), file, 2000);
  assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('c.bpk')).sort(), ['c.bpk.001', 'c.bpk.002']);
});

test('a failing stream leaves nothing at the target names', async () => {
  const file = join(dir, 'd.bpk');
  await writeFile(file, 'old');
  async function* failing() {
    yield data;
    throw new Error('source broke');
  }
  await assert.rejects(writeVolumes(failing(), file), /source broke/);
  assert.equal(await readFile(file, 'utf8'), 'old');
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('d.bpk')), ['d.bpk']);
});
