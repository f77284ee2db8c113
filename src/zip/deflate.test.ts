import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildZip, codeLike, type ZipInput } from '../../test/fixtures/zip.js';
import { inflateRawSync } from 'node:zlib';
import { findParams, inflateEntry } from './deflate.js';
import { RawDeflater } from './deflater.js';
import { FileRange } from './file-range.js';
import { parseZip, type ZipEntry } from './parse.js';

const dir = mkdtempSync(join(tmpdir(), 'zip-deflate-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** Runs `fn` on the first entry of a zip of `e`, the bytes possibly edited first. */
function withEntry<T>(e: ZipInput, fn: (z: FileRange, entry: ZipEntry) => T, edit?: (b: Buffer, entry: ZipEntry) => void): T {
  const bytes = buildZip([e]).bytes;
  const p = join(dir, `${n++}.zip`);
  const fd0 = openSync(p, 'w');
  closeSync(fd0);
  writeFileSync(p, bytes);
  let fd = openSync(p, 'r');
  const entry = parseZip(new FileRange(fd, 0, bytes.length)).entries[0];
  if (edit) {
    closeSync(fd);
    edit(bytes, entry);
    writeFileSync(p, bytes);
    fd = openSync(p, 'r');
  }
  try {
    return fn(new FileRange(fd, 0, bytes.length), entry);
  } finally {
    closeSync(fd);
  }
}

test('finds the level a stream was made with, trying the previous entry\'s parameters first', () => {
  for (const level of [6, 9, 1, 4]) {
    const p = withEntry({ name: 'x', data: codeLike(100_000, level), level }, (z, e) => findParams(z, e, undefined));
    assert.equal(p?.level, level);
  }
  const hinted = withEntry({ name: 'x', data: codeLike(50_000, 7), level: 9 }, (z, e) => findParams(z, e, { level: 9, memLevel: 8, windowBits: 15, strategy: 0 }, 1));
  assert.equal(hinted?.level, 9, 'one try is enough when the hint fits');
});

test('a stream no candidate re-creates (Node\'s zlib fork) gets no parameters', () => {
  const p = withEntry({ name: 'x', data: codeLike(200_000, 5), method: 'node' }, (z, e) => findParams(z, e, undefined));
  assert.equal(p, undefined);
});

test('an entry whose data is not exactly one deflate stream of its size does not inflate', () => {
  const data = codeLike(30_000, 9);
  assert.equal(withEntry({ name: 'x', data }, (z, e) => inflateEntry(z, e, () => {})), true);
  // flip a byte in the middle of the stream: a data error or other bytes, never accepted silently as the size
  const flipped = withEntry({ name: 'x', data }, (z, e) => {
    let got = 0;
    const ok = inflateEntry(z, e, (b) => (got += b.length));
    return ok ? findParams(z, e, undefined) : undefined;
  }, (b, e) => {
    b[e.dataStart + 3] ^= 0xff;
  });
  assert.equal(flipped, undefined, 'a damaged stream is never re-created');
  // a size lie: the entry claims one byte more than the stream gives
  const short = { ...withEntry({ name: 'x', data }, (_z, e) => e) };
  const lie = withEntry({ name: 'x', data }, (z) => inflateEntry(z, { ...short, size: short.size + 1 }, () => {}));
  assert.equal(lie, false);
  const less = withEntry({ name: 'x', data }, (z) => inflateEntry(z, { ...short, size: short.size - 1 }, () => {}));
  assert.equal(less, false);
});

test('a reused deflater (reset between streams, or after one dropped half way) gives the bytes of a new state', () => {
  const deflate = (d: RawDeflater, input: Buffer) => {
    const out: Buffer[] = [];
    d.push(input, true, (b) => out.push(b));
    return Buffer.concat(out);
  };
  for (const level of [1, 6, 9]) {
    const params = { level, memLevel: 8, windowBits: 15, strategy: 0 };
    const reused = new RawDeflater(params);
    // sizes around the window (32 KiB) and output chunk (64 KiB), and an empty stream
    for (const [i, size] of [100_000, 0, 300, 32_768, 70_000, 5].entries()) {
      const input = codeLike(size, level * 10 + i);
      if (i === 3) reused.push(codeLike(50_000, 99), false, () => {}); // dropped unfinished
      if (i === 3) reused.reset();
      const fresh = deflate(new RawDeflater(params), input);
      assert.ok(fresh.equals(deflate(reused, input)), `level ${level}, stream ${i}`);
      assert.ok(inflateRawSync(fresh).equals(input));
    }
  }
});
