import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CHUNK } from '../chunk.js';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { readPooled } from './pooled-read.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-pooled-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const isDigestError = (e: unknown) => e instanceof BlockportError && e.code === 'EDIGEST';

test('reads a file in CHUNK pieces from reused buffers and checks its digest', async () => {
  for (const size of [0, 1000, 5 * CHUNK + 17, 40 << 20]) {
    const bytes = randomBytes(size);
    const path = join(dir, `f${size}`);
    await writeFile(path, bytes);
    const copies: Buffer[] = [];
    const seen = new Set<ArrayBufferLike>();
    for await (const c of readPooled(path, { digest: sha256(bytes), size })) {
      assert.ok(c.length <= CHUNK);
      seen.add(c.buffer);
      copies.push(Buffer.from(c));
    }
    assert.deepEqual(Buffer.concat(copies), bytes);
    assert.ok(seen.size <= 3, `${seen.size} buffers`);
  }
});

test('a file that does not match its digest or size fails at its end (EDIGEST)', async () => {
  const bytes = randomBytes(3 * CHUNK);
  const path = join(dir, 'bad');
  await writeFile(path, bytes);
  const drain = async (d: { digest: ReturnType<typeof sha256>; size: number }) => {
    for await (const _ of readPooled(path, d));
  };
  await assert.rejects(drain({ digest: sha256('other'), size: bytes.length }), isDigestError);
  await assert.rejects(drain({ digest: sha256(bytes), size: bytes.length - 1 }), isDigestError);
  await assert.rejects(drain({ digest: sha256(bytes), size: bytes.length + 1 }), isDigestError);
  // stopping early is no error
  for await (const _ of readPooled(path, { digest: sha256(bytes), size: bytes.length })) break;
});
