/**
 * blockport's tar reader against the hostile corpus (test/fixtures/hostile/cases.ts), with three
 * oracles. The rule is Go's archive/tar, what docker and containerd unpack with: the reader sees
 * exactly the entries Go sees (each case lists them, read from Go's reader.go), or refuses the
 * input. GNU tar 1.34 and Python's tarfile are run on every case too; where they differ from Go
 * the case says how (its `gnu` / `python` note) and the test checks only that the note exists.
 * Never a crash, a hang or a silent difference: every case ends in a listing or a coded refusal.
 */
import assert from 'node:assert/strict';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlockportError } from '../src/errors.js';
import { FileBytes } from '../src/tar/bytes.js';
import { nameBytes } from '../src/tar/names.js';
import { TarReader } from '../src/tar/reader.js';
import { tarCases, type Listed, type TarCase } from './fixtures/hostile/cases.js';
import { run, tempDir } from './fixtures/images.js';

/** A listing as compared: "TYPE NAME-BYTES-IN-HEX" lines, or 'error'. */
type Listing = string[] | 'error';

const line = ([flag, name]: Listed) => `${flag} ${(Buffer.isBuffer(name) ? name : Buffer.from(name)).toString('hex')}`;

/** What our reader lists, and whether the bytes it kept rebuild the input exactly. */
async function ours(src: AsyncIterable<Buffer> | Iterable<Buffer> | FileBytes): Promise<{ listing: Listing; rebuilt?: Buffer; error?: unknown }> {
  const r = new TarReader(src, 'case.tar');
  const out: string[] = [];
  const bytes: Buffer[] = [];
  try {
    for await (const e of r.entries()) {
      const h = e.header;
      // Go's typeflag after its fixes: a v7 '\0' is '0', or '5' for a name ending in '/'
      const flag = h.typeflag === '\0' ? (h.type === 'dir' ? '5' : '0') : h.typeflag;
      out.push(line([flag, nameBytes(h.path)]));
      bytes.push(e.raw);
      for await (const c of e.body()) bytes.push(Buffer.from(c));
      bytes.push(e.padding!);
    }
    bytes.push(...r.tailChunks());
    return { listing: out, rebuilt: Buffer.concat(bytes) };
  } catch (error) {
    assert.ok(error instanceof BlockportError, `a coded refusal, not ${String(error)}`);
    return { listing: 'error', error };
  }
}

function goListing(c: TarCase): Listing {
  return c.go === 'error' ? 'error' : c.go.map(line);
}

/** GNU tar's names (no types: `tar -t` shows none), or 'error' when it exits non-zero. */
async function gnuNames(file: string): Promise<Listing> {
  try {
    const { stdout } = await run('sh', ['-c', `tar --quoting-style=literal -tf '${file}' | od -An -tx1 -v | tr -d ' \\n'`]);
    const hex = stdout.trim();
    const names = Buffer.from(hex, 'hex').toString('latin1').split('\n').filter((n) => n !== '');
    // GNU tar exits non-zero on errors but the pipe hides it: ask again for the code
    await run('tar', ['-tf', file]);
    return names.map((n) => Buffer.from(n, 'latin1').toString('hex'));
  } catch {
    return 'error';
  }
}

const PY = `
import json, sys, tarfile
try:
    with tarfile.open(sys.argv[1]) as t:
        out = [[m.type.decode('latin1'), m.name.encode('utf-8', 'surrogateescape').hex()] for m in t]
except Exception as e:
    out = 'error'
print(json.dumps(out))
`;

async function pythonListing(file: string): Promise<Listing> {
  const { stdout } = await run('python3', ['-c', PY, file]);
  const got = JSON.parse(stdout) as [string, string][] | 'error';
  return got === 'error' ? 'error' : got.map(([t, n]) => `${t === '\0' ? '0' : t} ${n}`);
}

/** Go's names without its 'g' entries: how GNU tar lists them (`tar -t` prints names as stored). */
function asGnuLists(go: Listing): Listing {
  if (go === 'error') return go;
  return go.filter((l) => !l.startsWith('g ')).map((l) => l.slice(2));
}

describe('tar reader against the hostile corpus, Go as the rule, GNU tar and Python as oracles', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  before(async () => {
    t = await tempDir('tar-corpus');
  });
  after(() => t.cleanup());

  for (const c of tarCases()) {
    it(`${c.name}: ${c.what}`, async () => {
      const want = goListing(c);
      // streamed in odd chunks (every boundary crossed) and by position: the same answer
      const chunked = await ours((function* () {
        for (let i = 0; i < c.tar.length; i += 333) yield c.tar.subarray(i, i + 333);
      })());
      const file = join(t.dir, `${c.name}.tar`);
      await writeFile(file, c.tar);
      const fh = await open(file);
      const positional = await ours(new FileBytes(fh.fd, c.tar.length, 'case.tar')).finally(() => fh.close());
      assert.deepEqual(positional.listing, chunked.listing, 'streamed and positional reads agree');
      if (c.refusedByLimit) {
        assert.equal(chunked.listing, 'error', 'refused by blockport\'s own limit');
        assert.equal((chunked.error as BlockportError).code, 'EUNSUPPORTED');
      } else {
        assert.deepEqual(chunked.listing, want, 'the entries Go sees');
      }
      if (chunked.rebuilt) assert.ok(chunked.rebuilt.equals(c.tar), 'the kept bytes rebuild the input exactly');

      const gnu = await gnuNames(file);
      const gnuWant = asGnuLists(want);
      if (c.gnu === undefined && !c.refusedByLimit) assert.deepEqual(gnu, gnuWant, 'GNU tar agrees with Go (or the case notes how it differs)');
      const py = await pythonListing(file);
      // Python drops a folder's trailing slash (a spelling, not another entry)
      const noSlash = (l: Listing) => (l === 'error' ? l : l.map((x) => x.replace(/^5 (.*?)(2f)+$/, '5 $1')));
      const pyWant = noSlash(want === 'error' ? want : want.filter((l) => !l.startsWith('g ')));
      if (c.python === undefined && !c.refusedByLimit) assert.deepEqual(noSlash(py), pyWant, 'Python agrees with Go (or the case notes how it differs)');
    });
  }
});
