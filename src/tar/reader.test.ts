import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXED_MTIME, capabilities, gnuTarLayer, makeTree, nastyTree, pseudoRandom, run, tempDir, type FsNode } from '../../test/fixtures/images.js';
import { BlockportError } from '../errors.js';
import { xattrsOf, type TarHeader } from './header.js';
import { FileBytes, type ByteReader } from './bytes.js';
import { TarReader, type TarEntry } from './reader.js';

interface Read {
  entries: { entry: TarEntry; body: Buffer }[];
  tail: Buffer;
}

async function* chunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** Reads every entry; bodies are read unless `skip`, which leaves them to the reader. */
async function readAll(src: AsyncIterable<Buffer> | ByteReader, skip = false): Promise<Read> {
  const r = new TarReader(src, 'test.tar');
  const entries: Read['entries'] = [];
  for await (const entry of r.entries()) {
    const parts: Buffer[] = [];
    if (!skip) for await (const c of entry.body()) parts.push(Buffer.from(c));
    entries.push({ entry, body: Buffer.concat(parts) });
  }
  assert.ok(r.tail, 'tail is set at the end');
  return { entries, tail: r.tail };
}

function reemit(read: Read): Buffer {
  return Buffer.concat([...read.entries.flatMap(({ entry, body }) => [entry.raw, body, entry.padding ?? Buffer.alloc(1)]), read.tail]);
}

const isCorrupt = (e: unknown) => e instanceof BlockportError && e.code === 'ECORRUPT';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const isRoot = process.getuid?.() === 0;

/** Extra cases beyond the shared nasty tree: sub-second mtime, an empty xattr value. */
const extra: FsNode[] = [
  { path: 'x/subsecond', type: 'file', content: 'ns', mtime: 1_600_000_000.5 },
  { path: 'x/empty-xattr', type: 'file', content: 'e', xattrs: { 'user.empty': '' } },
];

const TYPES: Record<FsNode['type'], TarHeader['type']> = { file: 'file', dir: 'dir', symlink: 'symlink', hardlink: 'hardlink', fifo: 'fifo', chardev: 'char' };
const MODES: Record<FsNode['type'], number> = { file: 0o644, dir: 0o755, symlink: 0o777, hardlink: 0o644, fifo: 0o644, chardev: 0o666 };

/** Checks every entry against the node it was made from. GNU tar makes the first of a set of hard links the file. */
function checkEntries(read: Read, nodes: FsNode[], format: 'posix' | 'gnu', src: Buffer): void {
  const byPath = new Map(read.entries.map((e) => [e.entry.header.path, e]));
  const me = isRoot ? 0 : process.getuid?.() ?? 0;
  for (const n of nodes) {
    const name = `./${n.path}${n.type === 'dir' ? '/' : ''}`;
    const got = byPath.get(name);
    assert.ok(got, `entry ${JSON.stringify(name)} found`);
    const h = got.entry.header;
    const linkTarget = n.type === 'hardlink' ? nodes.find((m) => m.path === n.target)! : n;
    const group = nodes.filter((m) => m === linkTarget || (m.type === 'hardlink' && m.target === linkTarget.path)).map((m) => `./${m.path}`);
    if (group.length > 1) {
      const first = read.entries.find((e) => group.includes(e.entry.header.path))!;
      if (first === got) assert.equal(h.type, 'file', name);
      else assert.deepEqual([h.type, h.linkname, h.size], ['hardlink', first.entry.header.path, 0], name);
    } else assert.equal(h.type, TYPES[n.type], name);
    assert.equal(h.mode, n.mode ?? MODES[n.type], `${name} mode`);
    assert.equal(h.uid, n.uid ?? me, `${name} uid`);
    assert.equal(h.gid, n.gid ?? me, `${name} gid`);
    const mtime = linkTarget.mtime ?? FIXED_MTIME;
    assert.equal(h.mtime, format === 'gnu' ? Math.floor(mtime) : mtime, `${name} mtime`);
    if (n.type === 'symlink') assert.equal(h.linkname, n.target, name);
    if (h.type === 'file') {
      const c = linkTarget.content;
      const size = c === undefined ? 0 : typeof c === 'string' ? Buffer.byteLength(c) : Buffer.isBuffer(c) ? c.length : c.size;
      assert.equal(h.size, size, `${name} size`);
      assert.equal(got.body.length, size, `${name} body`);
      if (typeof c === 'string') assert.equal(got.body.toString('utf8'), c, name);
    }
    if (n.type === 'chardev') assert.deepEqual([h.devmajor, h.devminor], [n.major ?? 1, n.minor ?? 3]);
    const want = format === 'posix' ? Object.entries(linkTarget.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v)]) : [];
    assert.deepEqual([...xattrsOf(h)].sort(), want.sort(), `${name} xattrs`);
    // offsets are where the bytes are
    assert.ok(src.subarray(got.entry.offset, got.entry.offset + got.entry.raw.length).equals(got.entry.raw), `${name} raw at offset`);
  }
  assert.equal(read.entries.length, new Set([...nodes.map((n) => n.path), ...nodes.flatMap((n) => ancestors(n.path))]).size + 1, 'entry count (with ./)');
}

function ancestors(p: string): string[] {
  const parts = p.split('/');
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

describe('TarReader on GNU tar 1.34 output', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let root: string;
  let bigTar = Buffer.alloc(0);
  let nodes: FsNode[];
  const tars: Record<'posix' | 'gnu', Buffer> = { posix: Buffer.alloc(0), gnu: Buffer.alloc(0) };

  before(async () => {
    t = await tempDir('tar-reader');
    // device nodes and xattrs are left out where the machine cannot make them (see capabilities())
    nodes = [...nastyTree(), ...(capabilities().xattrs ? extra : extra.filter((n) => !n.xattrs))];
    root = join(t.dir, 'root');
    await makeTree(root, nodes);
    for (const format of ['posix', 'gnu'] as const) {
      await gnuTarLayer(root, join(t.dir, `${format}.tar`), { format });
      tars[format] = await readFile(join(t.dir, `${format}.tar`));
    }
    const bigRoot = join(t.dir, 'big');
    await makeTree(bigRoot, [{ path: 'a', type: 'file', content: 'a' }, { path: 'big.bin', type: 'file', content: { size: 3_000_000, seed: 11 } }, { path: 'z', type: 'file', content: 'z' }]);
    await gnuTarLayer(bigRoot, join(t.dir, 'big.tar'));
    bigTar = await readFile(join(t.dir, 'big.tar'));
  });
  after(async () => { await t.cleanup(); });

  for (const format of ['posix', 'gnu'] as const) {
    it(`${format}: every entry has the right path, type, size, mode, owner, mtime, link and xattrs`, async () => {
      const read = await readAll(createReadStream(join(t.dir, `${format}.tar`)));
      checkEntries(read, nodes, format, tars[format]);
    });

    it(`${format}: raw + body + padding of every entry, then tail, is the input byte for byte`, async () => {
      for (const size of [1 << 16, 61, 511, 513, 1 << 20]) {
        const read = await readAll(chunks(tars[format], size));
        assert.ok(reemit(read).equals(tars[format]), `chunks of ${size}`);
        assert.ok(read.tail.length >= 1024 && read.tail.every((b) => b === 0), 'tail is the zero blocks');
      }
    });

    it(`${format}: from a file by position (FileBytes), read or skipped, the same entries and bytes`, async () => {
      const stream = await readAll(chunks(tars[format], 4096));
      for (const [name, bytes] of [[`${format}.tar`, tars[format]], ['big.tar', bigTar]] as const) {
        const fh = await open(join(t.dir, name));
        try {
          const want = name === 'big.tar' ? await readAll(chunks(bigTar, 4096)) : stream;
          const read = await readAll(new FileBytes(fh.fd, bytes.length, name));
          assert.ok(reemit(read).equals(bytes), `${name}: re-emitted`);
          const skipped = await readAll(new FileBytes(fh.fd, bytes.length, name), true);
          assert.deepEqual(skipped.entries.map((e) => [e.entry.offset, e.entry.raw, e.entry.padding, e.entry.header]), want.entries.map((e) => [e.entry.offset, e.entry.raw, e.entry.padding, e.entry.header]));
          assert.deepEqual(skipped.tail, want.tail);
        } finally {
          await fh.close();
        }
      }
      // a file cut inside a body or a header is truncation, whether the body is read or skipped
      const last = (await readAll(chunks(bigTar, 4096))).entries.at(-1)!.entry;
      for (const cut of [last.offset + 100, 1500_000, 700]) {
        const file = join(t.dir, `cut-${cut}.tar`);
        await writeFile(file, bigTar.subarray(0, cut));
        const fh = await open(file);
        try {
          for (const skip of [false, true]) await assert.rejects(readAll(new FileBytes(fh.fd, cut, file), skip), isCorrupt, `cut at ${cut}, skip ${skip}`);
        } finally {
          await fh.close();
        }
      }
    });

    it(`${format}: bodies can be skipped, or read in part`, async () => {
      const full = await readAll(chunks(tars[format], 4096));
      const skipped = await readAll(chunks(tars[format], 4096), true);
      assert.deepEqual(skipped.entries.map((e) => [e.entry.offset, e.entry.header]), full.entries.map((e) => [e.entry.offset, e.entry.header]));
      assert.ok(reemit({ entries: full.entries.map((e, i) => ({ entry: skipped.entries[i].entry, body: e.body })), tail: skipped.tail }).equals(tars[format]));
      // stop reading a body half way: the next entry is still found where it is
      const r = new TarReader(chunks(tars[format], 1000));
      const offsets: number[] = [];
      for await (const e of r.entries()) {
        offsets.push(e.offset);
        for await (const c of e.body()) if (c.length) break;
      }
      assert.deepEqual(offsets, full.entries.map((e) => e.entry.offset));
    });
  }

  it('posix: names over 100 bytes or not ASCII come from PAX path records', async () => {
    const read = await readAll(chunks(tars.posix, 1 << 16));
    for (const { entry } of read.entries) {
      const long = Buffer.byteLength(entry.header.path) > 100 || /[^\x01-\x7f]/.test(entry.header.path);
      assert.equal(entry.header.pax.has('path'), long, entry.header.path);
    }
    const deep = read.entries.find((e) => e.entry.header.path.includes('deep-file'))!;
    assert.ok(deep.entry.header.path.length > 255);
    const uni = read.entries.find((e) => e.entry.header.path === './nasty/ünïcödé-日本語-😀.txt')!;
    assert.equal(uni.body.toString(), 'unicode\n');
    const old = read.entries.find((e) => e.entry.header.path === './nasty/old')!;
    assert.equal(old.entry.header.pax.get('mtime')?.toString(), '-31536000');
    const sub = read.entries.find((e) => e.entry.header.path === './x/subsecond')!;
    assert.equal(sub.entry.header.pax.get('mtime')?.toString(), '1600000000.5');
  });

  it('ustar: names up to 255 bytes are split into prefix and name', async () => {
    const out = join(t.dir, 'ustar.tar');
    const deepDir = `nasty/${'0'.repeat(60)}/${'1'.repeat(60)}/${'2'.repeat(60)}`;
    await run('tar', ['-C', root, '--format=ustar', '--no-recursion', '-cf', out, deepDir, 'nasty/hl-target', 'nasty/hl-1']);
    const src = await readFile(out);
    const read = await readAll(chunks(src, 333));
    assert.deepEqual(read.entries.map((e) => [e.entry.header.path, e.entry.header.type, e.entry.header.linkname]), [
      [`${deepDir}/`, 'dir', ''], ['nasty/hl-target', 'file', ''], ['nasty/hl-1', 'hardlink', 'nasty/hl-target'],
    ]);
    assert.equal(read.entries[0].entry.raw.subarray(345, 351).toString(), 'nasty/', 'prefix field used');
    assert.ok(reemit(read).equals(src));
  });

  it('gnu: long names and links use ././@LongLink, big ids and old mtimes base-256', async () => {
    const read = await readAll(chunks(tars.gnu, 1 << 16));
    const long = read.entries.find((e) => e.entry.header.path === `./nasty/${'n'.repeat(255)}`)!;
    assert.equal(long.entry.raw.subarray(0, 13).toString(), '././@LongLink');
    assert.equal(long.entry.raw[156], 'L'.charCodeAt(0));
    const link = read.entries.find((e) => e.entry.header.path === './nasty/long-link')!;
    assert.equal(link.entry.raw[156], 'K'.charCodeAt(0));
    const big = read.entries.find((e) => e.entry.header.path === './nasty/bigids')!;
    assert.equal(big.entry.raw[108] & 0x80, 0x80, 'uid in base-256');
    const old = read.entries.find((e) => e.entry.header.path === './nasty/old')!;
    assert.equal(old.entry.raw[136], 0xff, 'negative mtime in base-256');
  });

  for (const format of ['posix', 'gnu'] as const) {
    it(`${format}: --owner/--group with numeric ids over 2097151`, async () => {
      const out = join(t.dir, `owner-${format}.tar`);
      await gnuTarLayer(root, out, { format, extra: ['--owner=:3000000', '--group=:3000001'] });
      const read = await readAll(createReadStream(out));
      assert.ok(read.entries.length > 40);
      for (const { entry } of read.entries) assert.deepEqual([entry.header.uid, entry.header.gid], [3_000_000, 3_000_001], entry.header.path);
      assert.ok(reemit(read).equals(await readFile(out)));
    });
  }

  it('a PAX global header is an entry of its own, applies to no other entry, and stays in the raw bytes', async () => {
    const out = join(t.dir, 'global.tar');
    await run('tar', ['-C', root, '--format=posix', '--pax-option=comment=made-by-test', '--no-recursion', '-cf', out, 'nasty', 'nasty/empty']);
    const src = await readFile(out);
    const read = await readAll(chunks(src, 1)); // one byte at a time: every boundary is crossed
    // as Go's archive/tar reads it: the 'g' entry, then the files without its records
    assert.deepEqual(read.entries.map((e) => [e.entry.header.typeflag, e.entry.global]), [['g', true], ['5', false], ['0', false]]);
    assert.deepEqual(read.entries.slice(1).map((e) => e.entry.header.path), ['nasty/', 'nasty/empty']);
    assert.equal(read.entries[0].entry.header.pax.get('comment')?.toString(), 'made-by-test');
    assert.equal(read.entries[0].entry.header.size, 0, 'its records are in raw, not a body');
    for (const { entry } of read.entries.slice(1)) assert.equal(entry.header.pax.get('comment'), undefined);
    assert.equal(read.entries[0].entry.raw[156], 'g'.charCodeAt(0));
    assert.ok(reemit(read).equals(src));
  });

  it('GNU sparse files are "other" entries, passed through byte for byte', async () => {
    const dir = join(t.dir, 'sparse');
    await makeTree(dir, [{ path: 'small', type: 'file', content: 'x' }]);
    await run('truncate', ['-s', '20M', join(dir, 'sparse')]);
    await run('dd', ['of=' + join(dir, 'sparse'), 'bs=1', 'seek=5000000', 'conv=notrunc'], { input: 'data' });
    for (const format of ['posix', 'gnu'] as const) {
      const out = join(t.dir, `sparse-${format}.tar`);
      await run('tar', ['-C', dir, '--sparse', `--format=${format}`, '-cf', out, 'small', 'sparse']);
      const src = await readFile(out);
      const read = await readAll(chunks(src, 1 << 16));
      assert.deepEqual(read.entries.map((e) => e.entry.header.type), ['file', 'other'], format);
      assert.ok(reemit(read).equals(src));
    }
  });

  it('a 3 MB body streams through intact, read or skipped', async () => {
    const want = sha(Buffer.concat([...pseudoRandom(3_000_000, 11)]));
    for (const size of [4097, 1 << 16, 1 << 20]) {
      const read = await readAll(chunks(bigTar, size));
      assert.equal(sha(read.entries.find((e) => e.entry.header.path === './big.bin')!.body), want);
      assert.ok(reemit(read).equals(bigTar));
      assert.equal((await readAll(chunks(bigTar, size), true)).entries.at(-1)?.entry.header.path, './z');
    }
  });

  it('a truncated archive is ECORRUPT, wherever it is cut', async () => {
    // the nasty archive without its end marker, then one with a 3 MB body
    const src = Buffer.concat([tars.posix.subarray(0, tars.posix.length - (await readAll(chunks(tars.posix, 1 << 16))).tail.length), bigTar]);
    const read = await readAll(chunks(src, 1 << 16));
    const bigEntry = read.entries.find((e) => e.entry.header.path === './big.bin')!.entry;
    const withPax = read.entries.find((e) => e.entry.header.pax.has('path'))!.entry;
    const cuts = [
      100, // inside the first header block
      withPax.offset + 512 + 10, // inside PAX data
      withPax.offset + withPax.raw.length - 1, // inside the block after a PAX header
      withPax.offset + 1024, // right after an extension header
      bigEntry.offset + bigEntry.raw.length + 1_000_000, // inside a body
      bigEntry.offset + bigEntry.raw.length + 3_000_000 + 10, // inside the padding
    ];
    for (const cut of cuts) {
      await assert.rejects(readAll(chunks(src.subarray(0, cut), 4096)), isCorrupt, `cut at ${cut}`);
      await assert.rejects(readAll(chunks(src.subarray(0, cut), 4096), true), isCorrupt, `cut at ${cut}, skipping bodies`);
    }
    // like GNU tar and Go, an archive that stops cleanly between entries (no end marker) is accepted
    const clean = await readAll(chunks(src.subarray(0, bigEntry.offset), 4096));
    assert.equal(clean.tail.length, 0);
    assert.ok(reemit(clean).equals(src.subarray(0, bigEntry.offset)));
  });

  it('a flipped header byte fails its checksum (ECORRUPT); so does a non-tar', async () => {
    const src = tars.posix;
    const read = await readAll(chunks(src, 1 << 16));
    const e = read.entries[5].entry;
    const hdr = e.offset + e.raw.length - 512; // the entry's own ustar block
    for (const off of [hdr + 3, hdr + 100, hdr + 124, hdr + 148, hdr + 156, hdr + 300, e.offset + 2]) {
      const bad = Buffer.from(src);
      bad[off] ^= 0x01;
      await assert.rejects(readAll(chunks(bad, 4096)), isCorrupt, `flip at ${off - e.offset}`);
    }
    await assert.rejects(readAll(chunks(Buffer.from('this is not a tar archive'.repeat(40)), 4096)), isCorrupt);
  });

  it('accepts the signed checksum some old tars wrote, and nothing else', async () => {
    const block = Buffer.alloc(512);
    block.write('caf\xe9-latin1-name', 0, 'latin1');
    block.write('0000644\0', 100, 'latin1');
    block.write('00000000000\0', 124, 'latin1');
    block[156] = 0x30;
    block.write('ustar\x0000', 257, 'latin1');
    block.fill(0x20, 148, 156);
    const signed = block.reduce((a, b) => a + (b > 127 ? b - 256 : b), 0);
    for (const [sum, ok] of [[signed, true], [signed + 1, false]] as const) {
      block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      const archive = Buffer.concat([block, Buffer.alloc(1024)]);
      if (!ok) await assert.rejects(readAll(chunks(archive, 512)), isCorrupt);
      else assert.ok(reemit(await readAll(chunks(archive, 512))).equals(archive));
    }
  });

  it('an empty source is an empty archive; a huge extension header is refused', async () => {
    const empty = await readAll(chunks(Buffer.alloc(0), 1));
    assert.deepEqual([empty.entries.length, empty.tail.length], [0, 0]);
    const first = (await readAll(chunks(tars.posix, 1 << 16))).entries.find((e) => e.entry.raw.length > 512)!.entry;
    const hdr = Buffer.from(tars.posix.subarray(first.offset, first.offset + 512));
    assert.equal(hdr[156], 'x'.charCodeAt(0));
    hdr.write('00077777777\0', 124, 'latin1'); // a 16 MiB PAX header
    hdr.fill(0x20, 148, 156);
    const sum = hdr.reduce((a, b) => a + b, 0);
    hdr.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await assert.rejects(readAll(chunks(Buffer.concat([hdr, Buffer.alloc(4096)]), 4096)), isCorrupt);
  });
});
