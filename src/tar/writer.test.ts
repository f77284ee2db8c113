import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXED_MTIME, capabilities, makeTree, pseudoRandom, run, tempDir, treeSignature, type FsNode } from '../../test/fixtures/images.js';
import { applyPax, parseBlock, parsePax, xattrsOf, type TarHeader, type TarType } from './header.js';
import { TarReader } from './reader.js';
import { END_OF_ARCHIVE, encodeHeader, padding, type NewEntry } from './writer.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const long = (c: string, n: number) => c.repeat(n);

/** The hard cases, as files on disk would be; each becomes a NewEntry for our writer. */
const cases: FsNode[] = [
  { path: 'plain.txt', type: 'file', content: 'plain\n' },
  { path: 'empty', type: 'file', content: '' },
  { path: 'bin/tool', type: 'file', content: '#!/bin/sh\n', mode: 0o4755 },
  { path: `d/${long('a', 120)}`, type: 'file', content: 'over 100' },
  { path: `d/${long('b', 60)}/${long('c', 60)}/${long('d', 60)}/${long('e', 60)}/file`, type: 'file', content: 'over 255' },
  { path: 'd/ünïcödé-日本語-😀.txt', type: 'file', content: 'unicode' },
  { path: 'd/hard', type: 'hardlink', target: `d/${long('a', 120)}` },
  { path: 'd/hard-short', type: 'hardlink', target: 'plain.txt' },
  { path: 'd/sym-long', type: 'symlink', target: `${long('t/', 150)}x` },
  { path: 'd/sym-uni', type: 'symlink', target: 'ünïcödé-日本語-😀.txt' },
  { path: 'd/sym-abs', type: 'symlink', target: '/usr/bin/env' },
  { path: 'd/big-ids', type: 'file', content: 'ids', uid: 3_000_000, gid: 3_000_001 },
  { path: 'd/xattrs', type: 'file', content: 'x', xattrs: { 'user.x': 'hello', 'user.bin': Buffer.from([0, 10, 0x3d, 0xff]), 'security.capability': Buffer.from('0100000200040000000000000000000000000000', 'hex') } },
  { path: 'd/old', type: 'file', content: '1969', mtime: -31_536_000 },
  { path: 'd/future', type: 'file', content: '2255', mtime: 9_000_000_000 },
  { path: 'd/fifo', type: 'fifo' },
  { path: 'd/random', type: 'file', content: Buffer.concat([...pseudoRandom(5000, 3)]) },
  { path: 'odd', type: 'dir', mode: 0o1777 },
];

const TYPES: Record<FsNode['type'], TarType> = { file: 'file', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', fifo: 'fifo', chardev: 'char' };
const MODES: Record<FsNode['type'], number> = { file: 0o644, dir: 0o755, symlink: 0o777, hardlink: 0o644, fifo: 0o644, chardev: 0o666 };

function bodyOf(n: FsNode): Buffer {
  return n.type === 'file' ? Buffer.from((n.content as string | Buffer | undefined) ?? '') : Buffer.alloc(0);
}

/** Every node as a NewEntry, parents first (explicit 0755 dirs, as makeTree makes them). */
function entriesOf(nodes: FsNode[]): { entry: NewEntry; body: Buffer }[] {
  const dirs = new Set<string>(nodes.filter((n) => n.type === 'dir').map((n) => n.path));
  const out: { entry: NewEntry; body: Buffer }[] = [];
  for (const n of nodes) {
    const parts = n.path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (dirs.has(d)) continue;
      dirs.add(d);
      out.push({ entry: { path: d, type: 'dir', size: 0, mode: 0o755, uid: 0, gid: 0, mtime: FIXED_MTIME }, body: Buffer.alloc(0) });
    }
    const target = n.type === 'hardlink' ? nodes.find((m) => m.path === n.target)! : n;
    const body = bodyOf(n);
    const pax = new Map(Object.entries(target.xattrs ?? {}).map(([k, v]) => [`SCHILY.xattr.${k}`, Buffer.from(v)]));
    out.push({
      entry: {
        path: n.path, type: TYPES[n.type], size: body.length, mode: target.mode ?? MODES[n.type], uid: target.uid ?? 0, gid: target.gid ?? 0,
        mtime: target.mtime ?? FIXED_MTIME, linkname: n.target, pax: pax.size ? pax : undefined, devmajor: n.major, devminor: n.minor,
      },
      body,
    });
  }
  return out;
}

function archive(entries: { entry: NewEntry; body: Buffer }[]): Buffer {
  return Buffer.concat([...entries.flatMap(({ entry, body }) => [encodeHeader(entry), body, padding(body.length)]), END_OF_ARCHIVE]);
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

/** The fields our reader gives back, shaped like the NewEntry that made them. */
function asNewEntry(h: TarHeader): Record<string, unknown> {
  const x = xattrsOf(h);
  return { path: h.path, type: h.type, size: h.size, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime, linkname: h.linkname, xattrs: [...x].sort() };
}

describe('encodeHeader', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let nodes: FsNode[];
  let tar: Buffer;

  before(async () => {
    t = await tempDir('tar-writer');
    const { devices, xattrs } = capabilities();
    nodes = [...cases.filter((n) => xattrs || !n.xattrs), ...(devices ? [{ path: 'd/null', type: 'chardev', major: 1, minor: 3 } as const] : [])];
    tar = archive(entriesOf(nodes));
    await writeFile(join(t.dir, 'ours.tar'), tar);
  });
  after(async () => { await t.cleanup(); });

  it('GNU tar lists what we write', async () => {
    const { stdout } = await run('tar', ['-tvf', join(t.dir, 'ours.tar'), '--numeric-owner', '--quoting-style=literal']);
    assert.match(stdout, new RegExp(`^-rw-r--r-- 0/0 +8 2020-09-13 12:26 d/${long('a', 120)}$`, 'm'));
    assert.match(stdout, new RegExp(`d/${long('b', 60)}/.*/file$`, 'm'));
    assert.match(stdout, /^hrw-r--r-- 0\/0 +0 .* d\/hard link to d\/a{120}$/m);
    assert.match(stdout, new RegExp(`^lrwxrwxrwx .* d/sym-long -> ${long('t/', 150)}x$`, 'm'));
    assert.match(stdout, /^lrwxrwxrwx .* d\/sym-uni -> ünïcödé-日本語-😀\.txt$/m);
    assert.match(stdout, /^-rw-r--r-- 3000000\/3000001 +3 .* d\/big-ids$/m);
    assert.match(stdout, /^-rw-r--r-- .* 1969-01-01 00:00 d\/old$/m);
    assert.match(stdout, /^-rw-r--r-- .* 2255-03-14 16:00 d\/future$/m);
    assert.match(stdout, /^prw-r--r-- .* d\/fifo$/m);
    assert.match(stdout, /^-rwsr-xr-x .* bin\/tool$/m);
    assert.match(stdout, /^drwxrwxrwt .* odd\/$/m);
    assert.doesNotMatch(stdout, /PaxHeaders/);
  });

  it('GNU tar extracts it to the same tree as the files it was described from', async () => {
    const out = join(t.dir, 'extracted');
    await run('mkdir', [out]);
    await run('tar', ['-xf', join(t.dir, 'ours.tar'), '-C', out, '--xattrs', '--xattrs-include=*', '--numeric-owner', '--same-owner', '--same-permissions']);
    const src = join(t.dir, 'src');
    await makeTree(src, nodes);
    assert.deepEqual(await treeSignature(out, { mtime: true, xattrs: true }), await treeSignature(src, { mtime: true, xattrs: true }));
  });

  it('our reader reads back every field, and the very bytes', async () => {
    const entries = entriesOf(nodes);
    const r = new TarReader(once(tar));
    let i = 0;
    const parts: Buffer[] = [];
    for await (const e of r.entries()) {
      const { entry, body } = entries[i++];
      assert.ok(e.raw.equals(encodeHeader(entry)), entry.path);
      const want = { ...entry, path: entry.type === 'dir' ? `${entry.path}/` : entry.path, linkname: entry.linkname ?? '', xattrs: [...(entry.pax ?? [])].map(([k, v]) => [k.slice(13), v]).sort() };
      assert.deepEqual(asNewEntry(e.header), Object.fromEntries(Object.keys(asNewEntry(e.header)).map((k) => [k, (want as Record<string, unknown>)[k]])), entry.path);
      const got: Buffer[] = [];
      for await (const c of e.body()) got.push(Buffer.from(c));
      assert.ok(Buffer.concat(got).equals(body), entry.path);
      if (entry.type === 'char') assert.deepEqual([e.header.devmajor, e.header.devminor], [1, 3]);
      parts.push(e.raw, ...got, e.padding!);
    }
    assert.equal(i, entries.length);
    assert.ok(Buffer.concat([...parts, r.tail!]).equals(tar));
  });

  it('is deterministic, whatever the order of PAX records given', () => {
    const e: NewEntry = { path: `ünï/${long('p', 200)}`, type: 'file', size: 3, uid: 5_000_000, mtime: 1.5, pax: new Map([['SCHILY.xattr.user.b', Buffer.from('2')], ['SCHILY.xattr.user.a', Buffer.from('1')]]) };
    const reversed: NewEntry = { ...e, pax: new Map([...e.pax!].reverse()) };
    assert.ok(encodeHeader(e).equals(encodeHeader(reversed)));
    assert.equal(sha(archive(entriesOf(nodes))), sha(tar));
    const data = encodeHeader(e).subarray(512).toString('latin1');
    assert.ok(data.indexOf('SCHILY.xattr.user.a') < data.indexOf('SCHILY.xattr.user.b'));
  });

  it('plain entries are byte-identical to GNU tar --format=ustar', async () => {
    const plain: FsNode[] = [
      { path: 'd', type: 'dir' },
      { path: 'd/f', type: 'file', content: 'abc', mode: 0o640 },
      { path: 'd/h', type: 'hardlink', target: 'd/f' },
      { path: 'd/p', type: 'fifo' },
      { path: 'd/s', type: 'symlink', target: 'f' },
    ];
    const src = join(t.dir, 'plain');
    await makeTree(src, plain);
    await run('tar', ['-C', src, '--format=ustar', '--numeric-owner', '--owner=0', '--group=0', '--no-recursion', '-cf', join(t.dir, 'plain.tar'), 'd', 'd/f', 'd/h', 'd/p', 'd/s']);
    const gnu = await readFile(join(t.dir, 'plain.tar'));
    const ours = archive(entriesOf(plain));
    assert.equal(ours.findIndex((b, i) => b !== gnu[i]), -1, 'same bytes, end marker included');
    assert.ok(gnu.subarray(ours.length).every((b) => b === 0), 'GNU tar only adds record padding');
  });

  it('sizes past 8 GiB, long user names and fractional times go to PAX records', () => {
    const big = 10 * 2 ** 30;
    const bytes = encodeHeader({ path: 'huge', type: 'file', size: big, uname: long('u', 40), gname: 'grüppe', mtime: 1e-7 });
    const ext = parseBlock(bytes.subarray(0, 512));
    const pax = parsePax(bytes.subarray(512, 512 + ext.size));
    const h: TarHeader = { ...parseBlock(bytes.subarray(bytes.length - 512)), pax: new Map() };
    assert.equal(h.size, 0, 'ustar size left zero');
    applyPax(h, pax);
    assert.deepEqual([h.size, h.uname, h.gname, h.mtime], [big, long('u', 40), 'grüppe', 1e-7]);
    assert.equal(pax.get('mtime')?.toString(), '0.0000001', 'no exponent notation');
  });

  it('directories get a trailing slash; names are cut, not spilled, when PAX carries them', () => {
    const d = encodeHeader({ path: 'a/b', type: 'dir', mode: 0o755 });
    assert.equal(parseBlock(d).path, 'a/b/');
    const n = encodeHeader({ path: `ü${long('z', 120)}`, type: 'file' });
    const main = parseBlock(n.subarray(n.length - 512));
    assert.equal(Buffer.byteLength(main.path), 100);
    assert.match(main.path, /^__z+$/);
  });
});
