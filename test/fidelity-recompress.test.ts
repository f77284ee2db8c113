/**
 * Finding and replaying the compressor of a layer blob: the recipe must re-create the blob byte
 * for byte for layers made by GNU gzip, vanilla zlib (pako), Node's zlib and the zstd command,
 * and must say why for layers no candidate re-creates (Go's gzip writers, via umoci).
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import pako from 'pako';
import { sha256 } from '../src/digest/digest.js';
import { candidatesFor, findRecipe, type RecipeSource } from '../src/fidelity/find-recipe.js';
import { parseGzipHeader, parseZstdHeader } from '../src/fidelity/headers.js';
import { formatRecipe, parseRecipe, type Recipe } from '../src/fidelity/recipe.js';
import { recompressor } from '../src/fidelity/recompressor.js';
import { sameBytes } from '../src/fidelity/same-bytes.js';
import { gnuTarLayer, javaLikeTree, makeTree, nodeModulesTree, run, tempDir, umociImage } from './fixtures/images.js';

function source(blob: string, tar: string, size: number): RecipeSource {
  return {
    openCompressed: async () => createReadStream(blob, { highWaterMark: 1 << 18 }),
    openUncompressed: async () => createReadStream(tar, { highWaterMark: 1 << 18 }),
    uncompressedSize: size,
    what: blob,
  };
}

/** Replays `r` over `tar` and returns the digest of what it wrote. */
async function replay(r: Recipe, tar: string, size: number): Promise<string> {
  const parts: Buffer[] = [];
  const out = pipeline(createReadStream(tar), recompressor(r, size, 'test'), () => {});
  for await (const c of out) parts.push(c as Buffer);
  return sha256(Buffer.concat(parts));
}

describe('compressor recipes', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let tar: string;
  let size: number;
  let data: Buffer;

  before(async () => {
    t = await tempDir('fidelity');
    const root = join(t.dir, 'tree');
    await makeTree(root, [...javaLikeTree({ jars: 4, seed: 7, minSize: 20_000, maxSize: 200_000 }), ...nodeModulesTree({ packages: 20, seed: 8 })]);
    tar = join(t.dir, 'layer.tar');
    await gnuTarLayer(root, tar);
    size = (await stat(tar)).size;
    data = await readFile(tar);
  });
  after(() => t.cleanup());

  const found = async (name: string, blob: Buffer | string): Promise<Recipe> => {
    const file = typeof blob === 'string' ? blob : join(t.dir, name);
    if (typeof blob !== 'string') await writeFile(file, blob);
    const r = await findRecipe(source(file, tar, size));
    assert.ok(r.recipe, `${name}: ${r.reason}`);
    // the recipe survives its annotation text, and replays to the very bytes
    const again = parseRecipe(formatRecipe(r.recipe), name);
    assert.equal(await replay(again, tar, size), sha256(await readFile(file)));
    return r.recipe;
  };

  for (const level of [1, 6, 9]) {
    it(`re-creates GNU gzip -${level} -n`, async () => {
      const { stdout } = await run('sh', ['-c', `gzip -${level} -n -c '${tar}' | base64 -w0`]);
      const r = await found(`gnu${level}.gz`, Buffer.from(stdout, 'base64'));
      assert.equal(r.format === 'gzip' && r.engine, 'gnu-gzip');
      assert.equal(r.level, level);
    });
  }

  it('re-creates GNU gzip with a file name and mtime in the header (no -n)', async () => {
    const { stdout } = await run('sh', ['-c', `gzip -6 -c '${tar}' | base64 -w0`]);
    const blob = Buffer.from(stdout, 'base64');
    const h = parseGzipHeader(blob)!;
    assert.equal(h.name, 'layer.tar');
    assert.notEqual(h.mtime, 0);
    const r = await found('named.gz', blob);
    assert.equal(r.format === 'gzip' && r.engine, 'gnu-gzip');
  });

  for (const level of [1, 5, 9]) {
    it(`re-creates vanilla zlib level ${level} (pako, as Python and Java write it)`, async () => {
      const r = await found(`zlib${level}.gz`, Buffer.from(pako.gzip(data, { level: level as 1 | 5 | 9 })));
      assert.equal(r.format === 'gzip' && r.engine, 'zlib');
      assert.equal(r.level, level);
    });
  }

  it("re-creates Node's own zlib (blockport's --compress gzip writer)", async () => {
    const r = await found('node.gz', gzipSync(data, { level: 6 }));
    assert.equal(r.format === 'gzip' && r.engine, 'node-zlib');
  });

  for (const args of [['-3'], ['-1'], ['-19'], ['-3', '--single-thread'], ['-6', '--long=27'], ['-3', '--no-check']]) {
    it(`re-creates zstd ${args.join(' ')} from a pipe`, async () => {
      const { stdout } = await run('sh', ['-c', `zstd -q -c ${args.join(' ')} < '${tar}' | base64 -w0`]);
      const r = await found(`z${args.join('')}.zst`, Buffer.from(stdout, 'base64'));
      assert.equal(r.format, 'zstd');
      assert.equal(r.level, Number(args[0].slice(1)));
    });
  }

  it('re-creates zstd of a file (the content size in the frame header)', async () => {
    const { stdout } = await run('sh', ['-c', `zstd -q -c -3 '${tar}' | base64 -w0`]);
    const blob = Buffer.from(stdout, 'base64');
    assert.equal(parseZstdHeader(blob)!.contentSize, true);
    const r = await found('file.zst', blob);
    assert.equal(r.format === 'zstd' && r.contentSize, true);
  });

  it('reports a layer gzipped by Go (umoci) as not reproducible, without trying for nothing', async () => {
    const layout = join(t.dir, 'umoci');
    await umociImage(layout, 'v1', [tar]);
    const blobs = join(layout, 'blobs', 'sha256');
    let biggest = '';
    for (const f of await readdir(blobs)) if (!biggest || (await stat(join(blobs, f))).size > (await stat(join(blobs, biggest))).size) biggest = f;
    const r = await findRecipe(source(join(blobs, biggest), tar, size));
    assert.equal(r.recipe, undefined);
    assert.match(r.reason!, /Go gzip/);
    assert.equal(r.attempts.length, 0);
  });

  it('says how close the best candidate came when none matches', async () => {
    const blob = Buffer.from(pako.gzip(data, { level: 6, memLevel: 9 }));
    await writeFile(join(t.dir, 'mem9.gz'), blob);
    const r = await findRecipe(source(join(t.dir, 'mem9.gz'), tar, size));
    assert.equal(r.recipe, undefined);
    assert.match(r.reason!, /no candidate compressor re-creates it \(\d+ tried; the closest matched its first \d+ bytes\)/);
  });
});

describe('recipe text', () => {
  const header = Buffer.from('1f8b08000000000000 03'.replace(' ', ''), 'hex');
  it('round-trips every kind', () => {
    const all: Recipe[] = [
      { format: 'gzip', engine: 'gnu-gzip', level: 6, header },
      { format: 'gzip', engine: 'zlib', level: 9, header },
      { format: 'zstd', engine: 'zstd-cli', level: 19, contentSize: true, checksum: false, long: 27, singleThread: true },
    ];
    for (const r of all) assert.deepEqual(parseRecipe(formatRecipe(r), 'x'), r);
    assert.equal(formatRecipe(all[0]), 'gzip/gnu-gzip level=6 header=H4sIAAAAAAAAAw==');
  });
  it('refuses anything but the canonical form', () => {
    for (const bad of ['gzip/gnu-gzip level=06 header=H4sIAAAAAAAAAw==', 'gzip/pigz level=6 header=H4sIAAAAAAAAAw==', 'gzip/zlib header=H4sIAAAAAAAAAw== level=6',
      'gzip/zlib level=10 header=H4sIAAAAAAAAAw==', 'zstd/zstd-cli level=3', 'brotli/x level=1', 'gzip/zlib level=6 level=6 header=H4sIAAAAAAAAAw==', 'gzip/zlib level=6 header=H4sI*']) {
      assert.throws(() => parseRecipe(bad, 'layer 1'), (e: Error & { code?: string }) => e.code === 'ECORRUPT' && /layer 1: bad compression recipe/.test(e.message), bad);
    }
  });
  it('orders gzip candidates by the XFL byte and skips Go headers', () => {
    const go = Buffer.from('1f8b08000000000000ff', 'hex');
    assert.equal(candidatesFor(go).candidates.length, 0);
    const best = candidatesFor(Buffer.from('1f8b08000000000002 03'.replace(' ', ''), 'hex')).candidates;
    assert.deepEqual([...new Set(best.map((c) => c.level))], [9]);
    assert.equal(candidatesFor(Buffer.from('plain tar')).reason, 'neither a gzip member nor a zstd frame');
  });
  it('compares streams and stops at the first difference', async () => {
    const { Readable } = await import('node:stream');
    assert.deepEqual(await sameBytes(Readable.from([Buffer.from('abc'), Buffer.from('def')]), Readable.from([Buffer.from('abcdef')])), { equal: true, matched: 6 });
    assert.deepEqual(await sameBytes(Readable.from([Buffer.from('abcdXf')]), Readable.from([Buffer.from('ab'), Buffer.from('cdef')])), { equal: false, matched: 4 });
    assert.deepEqual(await sameBytes(Readable.from([Buffer.from('abc')]), Readable.from([Buffer.from('abcd')])), { equal: false, matched: 3 });
    assert.deepEqual(await sameBytes(Readable.from([Buffer.from('abcd')]), Readable.from([Buffer.from('abc')])), { equal: false, matched: 3 });
  });
});
