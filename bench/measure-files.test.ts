import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bytesChart } from './measure-chart.js';
import { applyLayer, classify, flattenArchive, newFiles, perFileDedup, type FlatImage } from './measure-files.js';
import type { UpgradeBytes } from './measure-targets.js';

const f = (digest: string, size = 1, layer = 0) => ({ digest, size, layer });

test('classify tells whiteouts, opaque folders and plain paths apart', () => {
  assert.deepEqual(classify('./usr/lib/.wh.libfoo.so'), { whiteout: { path: 'usr/lib/libfoo.so', opaque: false }, path: 'usr/lib/.wh.libfoo.so' });
  assert.deepEqual(classify('etc/.wh..wh..opq'), { whiteout: { path: 'etc', opaque: true }, path: 'etc/.wh..wh..opq' });
  assert.deepEqual(classify('/app/lib/a.jar'), { path: 'app/lib/a.jar' });
});

test('applyLayer: whiteouts hide lower files only, opaque folders are emptied, non-files replace files', () => {
  const flat: FlatImage = new Map([['a/x', f('1')], ['a/y', f('2')], ['b/z', f('3')], ['c', f('4')], ['d', f('5')]]);
  applyLayer(flat, {
    whiteouts: [{ path: 'a', opaque: true }, { path: 'b', opaque: false }, { path: 'c', opaque: false }],
    entries: new Map([['a/new', f('6', 1, 1)], ['c', f('7', 1, 1)], ['d', null]]),
  });
  assert.deepEqual([...flat.keys()].sort(), ['a/new', 'c']);
  assert.equal(flat.get('c')!.digest, '7');
});

test('newFiles keeps distinct, non-empty contents the old image lacks', () => {
  const prev: FlatImage = new Map([['a', f('1')], ['b', f('2')]]);
  const next: FlatImage = new Map([['a', f('1')], ['moved', f('2')], ['c', f('3')], ['c2', f('3')], ['empty', f('e', 0)]]);
  assert.deepEqual([...newFiles(prev, next).keys()], ['3']);
});

async function dockerArchive(dir: string, layers: Record<string, string>[]): Promise<string> {
  const names: string[] = [];
  for (const [i, files] of layers.entries()) {
    const root = join(dir, `l${i}`);
    for (const [p, text] of Object.entries(files)) {
      await fsp.mkdir(join(root, p, '..'), { recursive: true });
      await fsp.writeFile(join(root, p), text);
    }
    assert.equal(spawnSync('tar', ['-cf', join(dir, `l${i}.tar`), '-C', root, '.']).status, 0);
    names.push(`l${i}.tar`);
  }
  const diffIds = names.map((n) => `sha256:${spawnSync('sha256sum', [join(dir, n)]).stdout.toString().split(' ')[0]}`);
  await fsp.writeFile(join(dir, 'config.json'), JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
  await fsp.writeFile(join(dir, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: ['t:1'], Layers: names }]));
  const out = join(dir, 'image.tar');
  assert.equal(spawnSync('tar', ['-cf', out, '-C', dir, 'manifest.json', 'config.json', ...names]).status, 0);
  return out;
}

test('flattenArchive and perFileDedup on docker-archives made by GNU tar', async () => {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-measure-'));
  try {
    const old = await dockerArchive(join(dir, 'old'), [{ 'a.txt': 'same', 'b.txt': 'old' }]);
    const big = 'x'.repeat(100_000);
    const next = await dockerArchive(join(dir, 'new'), [{ 'a.txt': 'same', 'b.txt': 'old' }, { 'b.txt': 'changed', '.wh.a.txt': '', 'c.txt': big }]);
    const [prev, flat] = [await flattenArchive(old), await flattenArchive(next)];
    assert.deepEqual([...flat.keys()].sort(), ['b.txt', 'c.txt']);
    const r = await perFileDedup(next, prev, flat);
    assert.equal(r.files, 2);
    assert.equal(r.rawBytes, 'changed'.length + big.length);
    assert.ok(r.bytes > 0 && r.bytes < 1000, `zstd -3 of the two new files: ${r.bytes} bytes`);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('bytesChart draws one bar per known size and says n/a for the others', () => {
  const s = (bytes: number) => ({ bytes, seconds: 1, cached: false });
  const u: UpgradeBytes = {
    name: 'a v1->v2', from: 'a-v1', to: 'a-v2', fullGzip: s(3e8), fullZstd: s(2e8), layerLevel: { bytes: 1e8, layers: 1, of: 2 },
    perFile: { files: 1, rawBytes: 1, bytes: 3e5 }, bundle: 2.5e5, bundleDelta: null, patchFrom: s(5e4),
  };
  const svg = bytesChart([u], 'T & <t>');
  assert.match(svg, /^<svg /);
  assert.equal(svg.match(/<rect x="150"/g)?.length, 6);
  assert.match(svg, />n\/a</);
  assert.match(svg, /T &amp; &lt;t&gt;/);
  assert.match(svg, />250 kB</);
});
