import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { minus } from './apt.js';
import { run } from './exec.js';
import { buildLayer, EPOCH, statTree, tarFolder } from './layer.js';
import { ResolutionLock } from './lockfile.js';

let dir = '';

before(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'bench-layer-'));
});

after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function sampleTree(root: string): Promise<void> {
  await fsp.mkdir(join(root, 'app/lib'), { recursive: true });
  await fsp.writeFile(join(root, 'app/lib/a-1.0.jar'), 'jar bytes');
  await fsp.writeFile(join(root, 'app/config.txt'), 'x=1\n');
  await fsp.link(join(root, 'app/config.txt'), join(root, 'app/config-link.txt'));
  await fsp.symlink('lib/a-1.0.jar', join(root, 'app/a.jar'));
}

const sha = async (f: string) => createHash('sha256').update(await fsp.readFile(f)).digest('hex');

test('tarFolder gives the same bytes for the same tree whatever the mtimes after the epoch', async () => {
  const tree = join(dir, 'tree');
  await sampleTree(tree);
  await tarFolder(tree, join(dir, 'one.tar'));
  const later = new Date((EPOCH + 86_400 * 400) * 1000);
  await fsp.utimes(join(tree, 'app/config.txt'), later, later);
  await tarFolder(tree, join(dir, 'two.tar'));
  assert.equal(await sha(join(dir, 'one.tar')), await sha(join(dir, 'two.tar')));
  const names = (await run('tar', ['-tf', join(dir, 'one.tar')])).trim().split('\n');
  assert.deepEqual(names, ['app/', 'app/a.jar', 'app/config-link.txt', 'app/config.txt', 'app/lib/', 'app/lib/a-1.0.jar']);
  const listing = await run('tar', ['--full-time', '-tvf', join(dir, 'one.tar'), 'app/config.txt']);
  assert.match(listing, /2024-01-01 00:00:00 app\/config.txt/);
});

test('statTree counts a hard-linked file once', async () => {
  const s = await statTree(join(dir, 'tree'));
  assert.deepEqual(s, { bytes: 9 + 4, files: 2, dirs: 2, symlinks: 1, hardlinks: 1, jars: 1 });
});

test('buildLayer reuses the cached tar for the same recipe and rebuilds for another', async () => {
  let fills = 0;
  const fill = async (stage: string) => {
    fills++;
    await fsp.writeFile(join(stage, 'f'), `fill ${fills}`);
    return 'note';
  };
  const a = await buildLayer(dir, 'l', { v: 1 }, fill);
  const b = await buildLayer(dir, 'l', { v: 1 }, fill);
  assert.equal(fills, 1);
  assert.equal(b.key, a.key);
  assert.equal(b.stats.files, 1);
  const c = await buildLayer(dir, 'l', { v: 2 }, fill);
  assert.equal(fills, 2);
  assert.notEqual(c.key, a.key);
  assert.equal((await fsp.readdir(dir)).filter((f) => f.startsWith('.stage-')).length, 0);
});

test('ResolutionLock remembers an answer across loads', async () => {
  const file = join(dir, 'lock.json');
  let calls = 0;
  const compute = async () => ++calls;
  const lock = await ResolutionLock.load(file);
  assert.equal(await lock.remember('k', compute), 1);
  assert.equal(await lock.remember('k', compute), 1);
  const again = await ResolutionLock.load(file);
  assert.equal(await again.remember('k', compute), 1);
  assert.equal(calls, 1);
});

test('minus keeps the packages a later install step adds', () => {
  const d = (name: string) => ({ name, version: '1', arch: 'all' });
  assert.deepEqual(minus([d('a'), d('b'), d('c')], [d('b')]).map((x) => x.name), ['a', 'c']);
});
