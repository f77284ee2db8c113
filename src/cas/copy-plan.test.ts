import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BlockportError } from '../errors.js';
import { CopyThreads, type Piece } from './copy-plan.js';
import { writePartsAtomic } from './parts.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function* from(pieces: Piece[]): AsyncGenerator<Piece> {
  for (const p of pieces) {
    await new Promise((r) => setImmediate(r));
    yield p;
  }
}

test('copy threads write plans of literals and file ranges at their offsets and hash exactly those bytes', async () => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-copy-'));
  const threads = CopyThreads.start(2);
  try {
    // a range larger than a batch slice (16 MiB), small ranges back to back, literals between them
    const big = randomBytes(17 << 20);
    const small = randomBytes(10_000);
    await fsp.writeFile(join(dir, 'big'), big);
    await fsp.writeFile(join(dir, 'small'), small);
    const planA: Piece[] = [
      Buffer.from('header'),
      { path: join(dir, 'small'), offset: 0, size: 100 },
      { path: join(dir, 'small'), offset: 100, size: 900 },
      Buffer.alloc(0),
      { path: join(dir, 'big'), offset: 5, size: big.length - 5 },
      Buffer.from('tail'),
    ];
    const a = Buffer.concat([Buffer.from('header'), small.subarray(0, 1000), big.subarray(5), Buffer.from('tail')]);
    const planB: Piece[] = Array.from({ length: 5000 }, (_, i) => (i % 2 ? Buffer.from([i & 0xff]) : { path: join(dir, 'small'), offset: i, size: 3 }));
    const b = Buffer.concat(planB.map((p) => (Buffer.isBuffer(p) ? p : small.subarray(p.offset, p.offset + p.size))));
    const out = join(dir, 'out');
    await fsp.writeFile(out, Buffer.alloc(0));
    let acked = 0;
    const [ra, rb] = await Promise.all([threads.copy(out, 7, from(planA), { onBytes: (n) => (acked += n) }), threads.copy(out, 7 + a.length, from(planB))]);
    assert.deepEqual(ra, { digest: sha(a), size: a.length });
    assert.deepEqual(rb, { digest: sha(b), size: b.length });
    assert.equal(acked, a.length, 'every byte written is reported');
    const written = await fsp.readFile(out);
    assert.deepEqual(written.subarray(7), Buffer.concat([a, b]));

    // a range past a file's end names the file; a missing file is ENOTFOUND; both leave the thread usable
    const short = threads.copy(out, 0, from([{ path: join(dir, 'small'), offset: 9_000, size: 2_000 }]));
    await assert.rejects(short, (e: unknown) => e instanceof BlockportError && e.code === 'EDIGEST' && e.message.includes(join(dir, 'small')));
    await assert.rejects(threads.copy(out, 0, from([{ path: join(dir, 'gone'), offset: 0, size: 1 }])), (e: unknown) => e instanceof BlockportError && e.code === 'ENOTFOUND');
    // a plan that fails while it is made stops with that error
    async function* failing(): AsyncGenerator<Piece> {
      yield Buffer.from('x');
      throw new Error('plan broke');
    }
    await assert.rejects(threads.copy(out, 0, failing()), /plan broke/);
    assert.deepEqual(await threads.copy(out, 0, from([Buffer.from('ok')])), { digest: sha(Buffer.from('ok')), size: 2 });
  } finally {
    await threads.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a planned part whose digest check fails leaves no file behind', async () => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-copy-'));
  try {
    const data = randomBytes(300_000);
    await fsp.writeFile(join(dir, 'src'), data);
    const out = join(dir, 'out');
    const plan = () => from([{ path: join(dir, 'src'), offset: 0, size: data.length }]);
    let seen = '';
    await writePartsAtomic(out, [{ offset: 0, bytes: Buffer.from('ab') }, { offset: 2, size: data.length, plan, check: (d) => (seen = d) }]);
    assert.equal(seen, sha(data));
    assert.deepEqual(await fsp.readFile(out), Buffer.concat([Buffer.from('ab'), data]));
    const wrong = () => {
      throw new BlockportError('EDIGEST', 'layer x: digest mismatch');
    };
    await assert.rejects(writePartsAtomic(join(dir, 'bad'), [{ offset: 0, size: data.length, plan, check: wrong }]), /digest mismatch/);
    await assert.rejects(writePartsAtomic(join(dir, 'bad'), [{ offset: 0, size: data.length + 1, plan, check: () => {} }]), /bytes, \d+ promised/);
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['out', 'src']);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
