import assert from 'node:assert/strict';
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildZip, codeLike, type ZipInput } from '../../test/fixtures/zip.js';
import { indexBase } from './base-index.js';
import { FileRange } from './file-range.js';
import { FlatWriter } from './flat-writer.js';
import { planZip } from './plan-zip.js';
import { BadRebuild, rebuildZip } from './rebuild.js';
import type { Segment } from './segments.js';

const dir = mkdtempSync(join(tmpdir(), 'zip-rebuild-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Many small classes, a third of them unchanged (copies), one large entry, one stored. */
function jar(version: number): Buffer {
  const entries: ZipInput[] = Array.from({ length: 400 }, (_, i) => {
    const data = codeLike(2000 + i * 23, i);
    if (i % 3 !== 0) data.write(`v${version}`, 50);
    return { name: `p/C${i}.class`, data, descriptor: i % 2 === 0 };
  });
  entries.splice(200, 0, { name: 'big.bin', data: codeLike(1_500_000, version) }, { name: 'raw.txt', data: codeLike(70_000, 5), method: 'store' });
  return buildZip(entries).bytes;
}

const oldZip = join(dir, 'old.zip');
const newZip = join(dir, 'new.zip');
const flat = join(dir, 'new.flat');
writeFileSync(oldZip, jar(1));
const target = jar(2);
writeFileSync(newZip, target);

/** Plans new.zip against old.zip, writing the flat stream. */
function plan(): Segment[] {
  const [b, t, f] = [openSync(oldZip, 'r'), openSync(newZip, 'r'), openSync(flat, 'w')];
  try {
    const w = new FlatWriter(f);
    const r = planZip(new FileRange(t, 0, target.length), indexBase(new FileRange(b, 0, jar(1).length)), w);
    w.flush();
    assert.ok(r.stats.copied > 100 && r.stats.deflated > 200, 'copies and re-deflated entries both');
    return r.segments;
  } finally {
    [b, t, f].forEach((fd) => closeSync(fd));
  }
}

async function rebuild(segments: Segment[]): Promise<Buffer> {
  const fd = openSync(oldZip, 'r');
  try {
    const parts: Buffer[] = [];
    for await (const c of rebuildZip(segments, createReadStream(flat, { highWaterMark: 64 << 10 }), new FileRange(fd, 0, jar(1).length))) parts.push(Buffer.from(c));
    return Buffer.concat(parts);
  } finally {
    closeSync(fd);
  }
}

test('a zip of copies, re-deflated entries (on one reused deflater), a stored and a large entry is rebuilt byte for byte', async () => {
  assert.ok((await rebuild(plan())).equals(target));
});

test('a deflate segment whose output is not its compressed size fails the rebuild, small or streamed', async () => {
  const segments = plan();
  const small = segments.findIndex((s) => s.kind === 'deflate' && s.size < 10_000);
  const big = segments.findIndex((s) => s.kind === 'deflate' && s.size > 1_000_000);
  for (const at of [small, big]) {
    const wrong = segments.map((s, i) => (i === at && s.kind === 'deflate' ? { ...s, compressedSize: s.compressedSize - 1 } : s));
    await assert.rejects(rebuild(wrong), (err: unknown) => err instanceof BadRebuild && /deflate segment gives/.test(err.message), `segment ${at}`);
  }
});

test('a flat stream longer or shorter than the plan fails the rebuild', async () => {
  const segments = plan();
  const last = segments.at(-1)!;
  assert.equal(last.kind, 'raw');
  const longer = [...segments.slice(0, -1), { ...last, length: (last as { length: number }).length - 1 }];
  const shorter = [...segments.slice(0, -1), { ...last, length: (last as { length: number }).length + 1 }];
  await assert.rejects(rebuild(longer), /goes on after the plan/);
  await assert.rejects(rebuild(shorter), /ends before the plan/);
});
