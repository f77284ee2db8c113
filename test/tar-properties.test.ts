/**
 * Property-based tests (fast-check, runs bounded to a few seconds): random trees round-trip
 * through the tar writer and reader byte for byte; import entries round-trip through their text
 * codec; and no name or link target the sanitiser accepts lets a naive unpacker leave the root.
 */
import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BlockportError } from '../src/errors.js';
import { formatImportEntry, importEntryName, parseImportEntry, type ImportEntry } from '../src/blocks/import-entry.js';
import { parseDigest } from '../src/digest/digest.js';
import { xattrsOf, type TarHeader } from '../src/tar/header.js';
import { nameBytes, nameOf } from '../src/tar/names.js';
import { LayerGuard, cleanPath } from '../src/tar/path.js';
import { TarReader } from '../src/tar/reader.js';
import { END_OF_ARCHIVE, encodeHeader, padding, type NewEntry } from '../src/tar/writer.js';

const RUNS = { numRuns: 100 };

/** Name parts: ASCII, UTF-8 of every width, spaces and '%', and bytes that are not UTF-8. */
const part = fc.oneof(
  fc.stringMatching(/^[a-zA-Z0-9._-]{1,12}$/),
  fc.constantFrom('é', '日本語', '😀', 'a b', '100%', '.hidden', 'x'.repeat(60)),
  fc.uint8Array({ minLength: 1, maxLength: 6 }).map((b) => nameOf(Buffer.from(b.map((x) => (x === 0 || x === 0x2f ? 0x80 : x))))),
).filter((p) => p !== '.' && p !== '..');
const relPath = fc.array(part, { minLength: 1, maxLength: 5 }).map((ps) => ps.join('/'));

const entry: fc.Arbitrary<NewEntry & { data: Buffer }> = fc.record({
  path: relPath,
  type: fc.constantFrom('file', 'dir', 'symlink', 'hardlink', 'fifo', 'char', 'block', 'other'),
  typeflag: fc.constantFrom('A', 'D', 'M', 'N', 'V'),
  data: fc.uint8Array({ maxLength: 1500 }).map((b) => Buffer.from(b)),
  mode: fc.integer({ min: 0, max: 0o7777 }),
  uid: fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 2 ** 40 })),
  gid: fc.integer({ min: 0, max: 2 ** 32 }),
  mtime: fc.oneof(fc.integer({ min: 0, max: 2 ** 33 }), fc.tuple(fc.integer({ min: 0, max: 2 ** 31 }), fc.stringMatching(/^[0-9]{1,9}$/)).map(([s, f]) => `${s}.${f}`)),
  linkname: relPath,
  uname: fc.oneof(fc.constant(''), fc.stringMatching(/^[a-z]{1,40}$/), fc.constant('üser')),
  gname: fc.constant('staff'),
  devmajor: fc.integer({ min: 0, max: 255 }),
  devminor: fc.integer({ min: 0, max: 255 }),
  pax: fc.option(fc.tuple(fc.stringMatching(/^user\.[a-z]{1,8}$/), fc.uint8Array({ maxLength: 20 })).map(([k, v]) => new Map([[`SCHILY.xattr.${k}`, Buffer.from(v)]])), { nil: undefined }),
}).map((e) => {
  const hasData = e.type === 'file' || e.type === 'other';
  return { ...e, size: hasData ? e.data.length : 0, data: hasData ? e.data : Buffer.alloc(0), linkname: e.type === 'symlink' || e.type === 'hardlink' ? e.linkname : '' };
});

function* chunked(b: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

describe('tar writer and reader, property-based', () => {
  it('random trees round-trip: every field, and the very bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { maxLength: 12 }), fc.integer({ min: 1, max: 2000 }), async (entries, chunk) => {
        const tar = Buffer.concat([...entries.flatMap((e) => [encodeHeader(e), e.data, padding(e.data.length)]), END_OF_ARCHIVE]);
        const got: { h: TarHeader; data: Buffer }[] = [];
        const bytes: Buffer[] = [];
        const r = new TarReader(chunked(tar, chunk), 'prop.tar');
        for await (const e of r.entries()) {
          const parts: Buffer[] = [];
          for await (const c of e.body()) parts.push(Buffer.from(c));
          got.push({ h: e.header, data: Buffer.concat(parts) });
          bytes.push(e.raw, ...parts, e.padding!);
        }
        bytes.push(...r.tailChunks());
        assert.ok(Buffer.concat(bytes).equals(tar), 'the bytes kept rebuild the archive');
        assert.equal(got.length, entries.length);
        for (const [i, e] of entries.entries()) {
          const { h, data } = got[i];
          const want = e.type === 'dir' ? `${e.path}/` : e.path;
          assert.ok(nameBytes(h.path).equals(nameBytes(want)), `path ${JSON.stringify(want)}`);
          assert.equal(h.type, e.type);
          if (e.type === 'other') assert.equal(h.typeflag, e.typeflag, 'other typeflags are written as given');
          assert.deepEqual([h.size, h.mode, h.uid, h.gid], [e.size, e.mode, e.uid, e.gid]);
          assert.ok(data.equals(e.data));
          assert.ok(nameBytes(h.linkname).equals(nameBytes(e.linkname ?? '')), 'linkname');
          assert.equal(h.uname, e.uname);
          if (typeof e.mtime === 'string') assert.equal(h.pax.get('mtime')?.toString(), e.mtime, 'PAX mtime digits kept');
          else assert.equal(h.mtime, e.mtime);
          assert.deepEqual([...xattrsOf(h)].map(([k, v]) => [k, v.toString('hex')]), [...(e.pax ?? [])].map(([k, v]) => [k.slice(13), v.toString('hex')]));
          if (h.type === 'char' || h.type === 'block') assert.deepEqual([h.devmajor, h.devminor], [e.devmajor, e.devminor]);
        }
      }),
      RUNS,
    );
  });

  it('names keep their bytes: nameOf and nameBytes are inverse, and different bytes give different names', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
        const [x, y] = [Buffer.from(a), Buffer.from(b)];
        assert.ok(nameBytes(nameOf(x)).equals(x));
        assert.equal(nameOf(x) === nameOf(y), x.equals(y));
      }),
      { numRuns: 2000 },
    );
  });
});

const digest = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => parseDigest(`sha256:${Buffer.from(b).toString('hex')}`));
/** Import paths are UTF-8 (the text is); any other byte is percent-encoded when needed. */
const utf8Part = fc.oneof(fc.stringMatching(/^[a-zA-Z0-9._ %-]{1,10}$/), fc.constantFrom('é', '日本', 'tab\there', 'nl\nx')).filter((p) => p !== '.' && p !== '..' && !p.startsWith('.import.'));
const utf8Path = fc.array(utf8Part, { minLength: 1, maxLength: 4 }).map((ps) => ps.join('/'));

const importEntry: fc.Arbitrary<ImportEntry> = fc.oneof(
  fc.record({ path: utf8Path, block: digest, size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), raw: fc.option(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), { nil: undefined }), mode: fc.integer({ min: 0, max: 0o7777 }), uid: fc.nat(), uname: fc.option(utf8Part, { nil: undefined }) }).map(
    (r): ImportEntry => ({ path: r.path, kind: 'file', block: r.block, size: r.size, raw: r.raw, meta: r.raw ? { xattrs: new Map() } : { mode: r.mode, uid: r.uid, uname: r.uname, xattrs: new Map() } }),
  ),
  fc.record({ path: utf8Path, block: digest, rels: fc.uniqueArray(utf8Path, { maxLength: 6 }), raw: fc.uint8Array({ maxLength: 30 }), xattr: fc.uint8Array({ maxLength: 10 }) }).map(
    (r): ImportEntry => ({ path: r.path, kind: 'dir', block: r.block, members: [{ rel: '.', raw: Buffer.from(r.raw) }, ...r.rels.map((rel) => ({ rel }))], meta: { mtime: 5, xattrs: new Map([['user.k', Buffer.from(r.xattr)]]) } }),
  ),
);

/** An import entry as plain data: Buffers as hex, Maps as pairs, no undefined fields. */
function plain(e: ImportEntry): unknown {
  return JSON.parse(JSON.stringify(e, (_k, v) => (v instanceof Map ? [...v].map(([k, b]) => [k, Buffer.from(b).toString('hex')]) : v?.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v)));
}

describe('import entry codec, property-based', () => {
  it('format then parse gives the entry back; the text is UTF-8 and one line per key', () => {
    fc.assert(
      fc.property(importEntry, (e) => {
        const text = formatImportEntry(e);
        assert.ok(text.toString('utf8') === new TextDecoder('utf-8', { fatal: true }).decode(text));
        assert.equal(text.toString().split('\n').length, text.toString().trimEnd().split('\n').length + 1);
        const back = parseImportEntry(text, importEntryName(e.path));
        assert.deepEqual(plain(back), plain(e));
        assert.ok(formatImportEntry(back).equals(text), 'one spelling');
      }),
      RUNS,
    );
  });

  it('an import entry never names a place other than its own sibling', () => {
    fc.assert(
      fc.property(importEntry, utf8Path, (e, elsewhere) => {
        fc.pre(elsewhere !== e.path);
        assert.throws(() => parseImportEntry(formatImportEntry(e), importEntryName(elsewhere)), (err: unknown) => err instanceof BlockportError && err.code === 'EUNSAFE');
      }),
      RUNS,
    );
  });
});

/** Where a naive unpacker, following the symlinks the layer made so far, writes `path`; null once it leaves the root. */
function naiveTarget(path: string, links: Map<string, string>): string | null {
  let parts: string[] = [];
  const todo = path.split('/').filter((p) => p !== '' && p !== '.');
  for (let hops = 0; todo.length > 0; ) {
    const p = todo.shift()!;
    if (p === '..') {
      if (parts.pop() === undefined) return null;
      continue;
    }
    parts.push(p);
    const target = todo.length > 0 ? links.get(parts.join('/')) : undefined;
    if (target === undefined) continue;
    if (++hops > 40) return null;
    if (target.startsWith('/')) return null; // the host's root, for an unpacker that is not chrooted
    parts.pop();
    todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
  }
  return parts.join('/');
}

describe('path sanitiser, property-based', () => {
  const messy = fc.array(fc.constantFrom('..', '.', '', 'a', 'b', 'etc', 'é', '\udcff', 'x/..', '/'), { maxLength: 7 }).map((ps) => ps.join('/'));

  it('a name it accepts stays below the root; one it refuses is EUNSAFE', () => {
    fc.assert(
      fc.property(messy, (name) => {
        try {
          const clean = cleanPath(name);
          const parts = clean === '' ? [] : clean.split('/');
          assert.ok(parts.every((p) => p !== '' && p !== '.' && p !== '..'), clean);
          assert.ok(posix.resolve('/root', clean).startsWith('/root'));
        } catch (err) {
          assert.ok(err instanceof BlockportError && err.code === 'EUNSAFE', String(err));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('no layer it accepts makes a naive unpacker write or hard-link outside the root', () => {
    const target = fc.oneof(messy, fc.constantFrom('/etc', '/', '../..', 'a', 'a/b'));
    const ent = fc.record({ path: messy, type: fc.constantFrom('file', 'dir', 'symlink', 'hardlink'), linkname: target });
    fc.assert(
      fc.property(fc.array(ent, { maxLength: 8 }), (entries) => {
        const guard = new LayerGuard('prop');
        const links = new Map<string, string>();
        for (const e of entries) {
          let path: string;
          try {
            path = guard.check(e);
          } catch (err) {
            assert.ok(err instanceof BlockportError && err.code === 'EUNSAFE', String(err));
            return; // the layer is refused: nothing is unpacked
          }
          assert.notEqual(naiveTarget(path, links), null, `${path} escapes through ${JSON.stringify([...links])}`);
          if (e.type === 'hardlink') assert.notEqual(naiveTarget(e.linkname, links), null, `hard link target ${e.linkname} escapes`);
          if (e.type === 'symlink') links.set(path, e.linkname);
          else links.delete(path);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
