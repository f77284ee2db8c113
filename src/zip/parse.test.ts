import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildZip, codeLike, type ZipInput } from '../../test/fixtures/zip.js';
import { FileRange } from './file-range.js';
import { parseZip, ZipRefused, type ZipLayout } from './parse.js';

const dir = mkdtempSync(join(tmpdir(), 'zip-parse-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function parse(bytes: Buffer): ZipLayout {
  const p = join(dir, `${n++}.zip`);
  writeFileSync(p, bytes);
  const fd = openSync(p, 'r');
  try {
    return parseZip(new FileRange(fd, 0, bytes.length));
  } finally {
    closeSync(fd);
  }
}

function refused(bytes: Buffer, why: RegExp): void {
  assert.throws(() => parse(bytes), (err: unknown) => err instanceof ZipRefused && why.test((err as Error).message));
}

const ENTRIES: ZipInput[] = [
  { name: 'META-INF/MANIFEST.MF', data: Buffer.from('Manifest-Version: 1.0\n'), descriptor: true },
  { name: 'a/A.class', data: codeLike(20_000, 1) },
  { name: 'a/', data: Buffer.alloc(0), method: 'store' },
  { name: 'b/B.txt', data: codeLike(5_000, 2), method: 'store' },
];

test('parses entries in file order with data and descriptor ranges matching the central directory', () => {
  const z = buildZip(ENTRIES, 'a comment');
  const l = parse(z.bytes);
  assert.deepEqual(l.entries.map((e) => e.name), ENTRIES.map((e) => e.name));
  assert.equal(l.cdStart, z.cd);
  const [mf, a, , b] = l.entries;
  assert.equal(mf.headerStart, 0);
  assert.equal(mf.end - mf.dataEnd, 16, 'the signed data descriptor follows the data');
  assert.equal(a.headerStart, mf.end);
  assert.equal(a.method, 8);
  assert.equal(a.size, 20_000);
  assert.equal(b.method, 0);
  assert.equal(b.compressedSize, 5_000);
  assert.equal(b.end, z.cd);
});

test('reads zip64 sizes from the extra fields, and a zip with bytes prepended (a launch script)', () => {
  const z = buildZip([{ name: 'big.bin', data: codeLike(3000, 3), zip64: true }, ENTRIES[1]]);
  assert.equal(parse(z.bytes).entries[0].size, 3000);
  const script = Buffer.from('#!/bin/sh\nexec java -jar "$0"\n');
  const l = parse(Buffer.concat([script, buildZip(ENTRIES).bytes]));
  assert.equal(l.entries[0].headerStart, script.length);
});

test('refuses overlapping entries: two central records for one local header', () => {
  const z = buildZip([ENTRIES[1], ENTRIES[1]]);
  const b = Buffer.from(z.bytes);
  const second = z.cd + 46 + ENTRIES[1].name.length;
  b.writeUInt32LE(z.locals[0], second + 42);
  refused(b, /overlapping/);
});

test('refuses a central directory that disagrees with a local header (name, method, CRC)', () => {
  const z = buildZip(ENTRIES);
  const name = Buffer.from(z.bytes);
  name[z.locals[1] + 30] ^= 0x20; // 'a/A.class' -> 'A/A.class' in the local header only
  refused(name, /names another file/);
  const method = Buffer.from(z.bytes);
  method.writeUInt16LE(0, z.locals[1] + 8);
  refused(method, /disagrees/);
  const crc = Buffer.from(z.bytes);
  crc.writeUInt32LE(crc.readUInt32LE(z.locals[1] + 14) ^ 1, z.locals[1] + 14);
  refused(crc, /sizes or CRC/);
});

test('refuses a zip64 size lie: the central record says more than the local header, or runs into the directory', () => {
  const z = buildZip([{ name: 'big.bin', data: codeLike(3000, 3), zip64: true }, ENTRIES[1]]);
  const extraAt = z.cd + 46 + 'big.bin'.length;
  const lie = Buffer.from(z.bytes);
  lie.writeBigUInt64LE(1n << 40n, extraAt + 4);
  refused(lie, /disagrees/);
  const both = Buffer.from(lie);
  both.writeBigUInt64LE(1n << 40n, z.locals[0] + 30 + 'big.bin'.length + 4);
  both.writeBigUInt64LE(1n << 40n, z.locals[0] + 30 + 'big.bin'.length + 12);
  both.writeBigUInt64LE(1n << 40n, extraAt + 12);
  refused(both, /runs into the central directory/);
});

test('refuses a data descriptor that disagrees, a truncated zip and trailing bytes after the end record', () => {
  const z = buildZip(ENTRIES);
  const dd = Buffer.from(z.bytes);
  const mfEnd = parse(z.bytes).entries[0].dataEnd;
  dd.writeUInt32LE(dd.readUInt32LE(mfEnd + 8) + 1, mfEnd + 8);
  refused(dd, /data descriptor/);
  refused(z.bytes.subarray(0, z.bytes.length - 30), /end of central directory/);
  refused(Buffer.concat([z.bytes, Buffer.from('junk')]), /end of central directory/);
  refused(Buffer.from('PK\x03\x04 not a zip at all, only its magic'), /end of central directory|too small/);
});
