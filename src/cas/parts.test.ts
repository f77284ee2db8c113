import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writePartsAtomic, type FilePart } from './parts.js';

async function* slowly(b: Buffer, step: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += step) {
    await new Promise((r) => setImmediate(r));
    yield b.subarray(i, i + step);
  }
}

test('parts streamed at once land at their offsets; a failing part leaves nothing and names its own error', async () => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-parts-'));
  try {
    const a = randomBytes(3 << 20);
    const b = randomBytes(1234567);
    const head = Buffer.from('head');
    const parts: FilePart[] = [
      { offset: 0, bytes: head },
      { offset: 4, size: a.length, stream: () => slowly(a, 100_000) },
      { offset: 4 + a.length, size: b.length, stream: () => slowly(b, 77_777) },
      { offset: 4 + a.length + b.length, bytes: Buffer.from('tail') },
    ];
    const out = join(dir, 'out');
    await writePartsAtomic(out, parts, 2);
    assert.deepEqual(await fsp.readFile(out), Buffer.concat([head, a, b, Buffer.from('tail')]));

    const bad = join(dir, 'bad');
    async function* broken(): AsyncGenerator<Buffer> {
      yield b.subarray(0, 1000);
      throw new Error('layer 2 is corrupt');
    }
    await assert.rejects(writePartsAtomic(bad, [parts[0], parts[1], { offset: 4 + a.length, size: b.length, stream: broken }], 2), /layer 2 is corrupt/);
    await assert.rejects(writePartsAtomic(bad, [{ offset: 0, size: 10, stream: () => slowly(a.subarray(0, 9), 4) }]), /9 of its 10 bytes/);
    await assert.rejects(writePartsAtomic(bad, [{ offset: 0, size: 10, stream: () => slowly(a.subarray(0, 11), 4) }]), /more than its 10 bytes/);
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['out']);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
