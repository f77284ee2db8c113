import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { OffThreadHasher, OFFLOAD_MIN } from './offload.js';
import { VerifyingStream } from './verify.js';
import type { Digest } from './digest.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

test('off-thread hashes equal createHash, for interleaved hashes and chunks larger than a slot', async () => {
  const a = randomBytes(3 << 20);
  const b = randomBytes((1 << 20) + 7);
  const ha = new OffThreadHasher();
  const hb = new OffThreadHasher();
  const pieces = (x: Buffer) => [x.subarray(0, 1000), x.subarray(1000, 600_000), x.subarray(600_000)];
  const pa = pieces(a);
  const pb = pieces(b);
  // not awaited one by one: concurrent updates must still land in order, slot by slot
  await Promise.all([...pa.map((p, i) => [p, pb[i]]).flat().map((p, i) => (i % 2 === 0 ? ha : hb).update(p))]);
  assert.equal(await ha.digest(), sha(a));
  assert.equal(await hb.digest(), sha(b));
  assert.equal(ha.size, a.length);
  assert.equal(await new OffThreadHasher().digest(), sha(Buffer.alloc(0)));
});

test('a large VerifyingStream (hashed off-thread) passes good bytes and fails on one flipped byte', async () => {
  const data = randomBytes(OFFLOAD_MIN + 12345);
  const chunks = (x: Buffer) => Readable.from(Array.from({ length: Math.ceil(x.length / 300_000) }, (_, i) => x.subarray(i * 300_000, (i + 1) * 300_000)));
  await pipeline(chunks(data), new VerifyingStream(sha(data), data.length), sink());
  const bad = Buffer.from(data);
  bad[bad.length >> 1] ^= 1;
  await assert.rejects(pipeline(chunks(bad), new VerifyingStream(sha(data), data.length, 'big blob'), sink()), /big blob: digest mismatch/);
  const dropped = new VerifyingStream(sha(data), data.length);
  const src = chunks(data);
  setImmediate(() => dropped.destroy(new Error('stop')));
  await assert.rejects(pipeline(src, dropped, sink()), /stop/);
  // the thread is still healthy after a dropped hash
  const again = new OffThreadHasher();
  await again.update(data.subarray(0, 1000));
  assert.equal(await again.digest(), sha(data.subarray(0, 1000)));
});
