import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { buildZip, codeLike, type ZipInput } from '../../test/fixtures/zip.js';
import { encodeZipDelta, zipDeltaDecoder, type ZipDeltaResult } from './delta-zip.js';
import { encodePatch } from './patch.js';

const dir = mkdtempSync(join(tmpdir(), 'delta-zip-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function file(bytes: Buffer): { path: string; size: number } {
  const path = join(dir, `f${n++}`);
  writeFileSync(path, bytes);
  return { path, size: bytes.length };
}

async function decode(base: { path: string; size: number }, member: string, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pipeline(createReadStream(member), zipDeltaDecoder(base.path, base.size, size, 'test member'), async function* (src: AsyncIterable<Buffer>) {
    for await (const c of src) parts.push(c);
  });
  return Buffer.concat(parts);
}

/** Encodes new against old, decodes it back and checks the bytes are the new zip's. */
async function roundTrip(oldZip: Buffer, newZip: Buffer): Promise<ZipDeltaResult & { member: string }> {
  const base = file(oldZip);
  const target = file(newZip);
  const member = join(dir, `m${n++}`);
  const r = await encodeZipDelta(base, target, member, { what: 'test', zstdLimit: 64 << 20 });
  assert.ok(r, 'a zip delta was made');
  assert.equal(statSync(member).size, r.storedSize);
  const back = await decode(base, member, newZip.length);
  assert.equal(sha256(back), sha256(newZip), 'rebuilt byte for byte');
  return { ...r, member };
}

/** Class-like entries; a changed one has a few bytes near its start edited (a new constant, as a patch release has). */
function classes(version: number, count: number, changed: (i: number) => boolean): ZipInput[] {
  return Array.from({ length: count }, (_, i) => {
    const data = codeLike(3000 + i * 37, i);
    if (changed(i)) data.write(`v${version}-edited`, 100);
    return { name: `org/example/C${i}.class`, data, descriptor: i % 2 === 0 };
  });
}

test('a jar with a few changed classes travels as copies, re-deflated entries and a small patch', async () => {
  const v1 = buildZip([{ name: 'META-INF/MANIFEST.MF', data: Buffer.from('Manifest-Version: 1.0\nVersion: 1\n') }, ...classes(1, 60, () => false)], 'v1').bytes;
  const v2 = buildZip([{ name: 'META-INF/MANIFEST.MF', data: Buffer.from('Manifest-Version: 1.0\nVersion: 2\n') }, ...classes(2, 60, (i) => i % 20 === 0), { name: 'org/example/New.class', data: codeLike(4000, 77) }], 'v2').bytes;
  const r = await roundTrip(v1, v2);
  assert.equal(r.stats.entries, 62);
  assert.equal(r.stats.copied, 57, 'the unchanged classes are copied from the old jar');
  assert.equal(r.stats.deflated, 5, 'manifest, 3 changed classes and the new one are re-deflated');
  assert.equal(r.stats.opaque, 0);
  const plain = await encodePatch(file(v1), file(v2), join(dir, `p${n++}`));
  assert.ok(r.storedSize < plain / 2, `zip delta ${r.storedSize} vs byte delta ${plain}`);
});

test('entries no deflate parameters re-create travel as their compressed bytes; the jar is still rebuilt exactly', async () => {
  const entries = (v: number): ZipInput[] => [
    { name: 'a.txt', data: codeLike(40_000, v), method: 'node' },
    { name: 'b.txt', data: codeLike(40_000, 10 + v), level: 9 },
    { name: 'c.bin', data: codeLike(1000, 20 + v), method: 'store' },
  ];
  const r = await roundTrip(buildZip(entries(1)).bytes, buildZip(entries(2)).bytes);
  assert.equal(r.stats.opaque, 1, 'the entry made by another deflater');
  assert.equal(r.stats.deflated, 1);
  assert.equal(r.stats.stored, 1);
});

test('a fat jar whose one nested jar changed costs about that nested jar\'s change', async () => {
  const lib = (v: number, seed: number) => buildZip(classes(v, 30, (i) => v > 1 && i === 3).map((e) => ({ ...e, data: Buffer.concat([e.data, Buffer.from(`lib ${seed}`)]) }))).bytes;
  const fat = (v: number) => buildZip([
    { name: 'BOOT-INF/classes/app/Main.class', data: codeLike(5000, 1) },
    ...[1, 2, 3, 4].map((k) => ({ name: `BOOT-INF/lib/lib${k}.jar`, data: lib(k === 2 ? v : 1, k), method: 'store' as const })),
  ]).bytes;
  const r = await roundTrip(fat(1), fat(2));
  assert.equal(r.stats.nested, 1, 'only the changed nested jar is planned entry by entry');
  assert.equal(r.stats.copied, 3 + 29 + 1, 'three unchanged nested jars whole, 29 classes of the changed one, Main.class');
  assert.ok(r.storedSize < 3000, `a few KB (${r.storedSize})`);
});

test('a zip refused by the parser (overlapping entries) gets no zip delta: its byte delta is used', async () => {
  const e: ZipInput = { name: 'x.class', data: codeLike(5000, 1) };
  const z = buildZip([e, e]);
  const bad = Buffer.from(z.bytes);
  bad.writeUInt32LE(z.locals[0], z.cd + 46 + e.name.length + 42);
  const r = await encodeZipDelta(file(buildZip([e]).bytes), file(bad), join(dir, `m${n++}`), { what: 'test', zstdLimit: 64 << 20 });
  assert.equal(r, undefined);
  const plain = await encodeZipDelta(file(Buffer.from('old bytes')), file(Buffer.from('not a zip')), join(dir, `m${n++}`), { what: 'test', zstdLimit: 64 << 20 });
  assert.equal(plain, undefined);
});

test('a damaged member is refused with ECORRUPT, never decoded into other bytes', async () => {
  const v1 = buildZip(classes(1, 10, () => false)).bytes;
  const v2 = buildZip(classes(2, 10, (i) => i === 4)).bytes;
  const r = await roundTrip(v1, v2);
  const base = file(v1);
  const good = readFileSync(r.member);
  const damage = async (edit: (b: Buffer) => void, code: string) => {
    const b = Buffer.from(good);
    edit(b);
    const m = join(dir, `d${n++}`);
    writeFileSync(m, b);
    await assert.rejects(decode(base, m, v2.length), (err: unknown) => err instanceof BlockportError && err.code === code);
  };
  await damage((b) => b.write('XX', 0), 'EUNSUPPORTED');
  await damage((b) => b.writeUInt32BE(0xffffffff, 9), 'ECORRUPT');
  await damage((b) => (b[13] = 0x7f), 'ECORRUPT'); // segment count
  await assert.rejects(decode(base, r.member, v2.length + 1), (err: unknown) => err instanceof BlockportError && err.code === 'ECORRUPT');
});

const hasJar = spawnSync('jar', ['--version']).status === 0;

test('jars made by the JDK\'s jar tool are rebuilt byte for byte', { skip: !hasJar && 'the JDK jar tool is not installed' }, async () => {
  const make = (v: number) => {
    const tree = join(dir, `tree${v}`);
    for (let i = 0; i < 80; i++) {
      mkdirSync(join(tree, 'org', `p${i % 5}`), { recursive: true });
      writeFileSync(join(tree, 'org', `p${i % 5}`, `K${i}.class`), codeLike(2000 + 50 * i, v === 2 && i % 16 === 0 ? 500 + i : i));
    }
    const out = join(dir, `v${v}.jar`);
    const r = spawnSync('jar', ['--create', '--file', out, '--date', '2024-01-01T00:00:00Z', '-C', tree, '.']);
    assert.equal(r.status, 0, r.stderr.toString());
    return readFileSync(out);
  };
  const r = await roundTrip(make(1), make(2));
  assert.equal(r.stats.opaque, 0, 'every stream Java\'s Deflater made is re-created');
  assert.ok(r.stats.copied >= 70);
});

test('large entries (deflated as a stream, inflated again per try above 8 MiB) are rebuilt exactly', async () => {
  const big = (v: number): ZipInput[] => {
    const data = codeLike(9 << 20, 3);
    data.write(`version ${v}`, 5 << 20);
    const mid = codeLike(1_500_000, 4);
    mid.write(`version ${v}`, 1000);
    return [{ name: 'small.class', data: codeLike(3000, 1) }, { name: 'big.dat', data }, { name: 'mid.dat', data: mid, descriptor: true }, { name: 'last.class', data: codeLike(2000, v) }];
  };
  const r = await roundTrip(buildZip(big(1)).bytes, buildZip(big(2)).bytes);
  assert.equal(r.stats.deflated, 3);
  assert.equal(r.stats.copied, 1);
  assert.ok(r.storedSize < 20_000, `${r.storedSize}`);
});
