import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RuleMatcher, rulesFor } from '../blocks/rules.js';
import { BlockportError } from '../errors.js';
import { parseAdd, parseCommand, parseLayerFlag, validateConfig } from './config.js';
import { destPath, LayerTree } from './source-tree.js';

const usage = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof BlockportError && e.code === 'EUSAGE' && re.test(e.message));

test('a plain word is one argument, a JSON array is used as is', () => {
  assert.deepEqual(parseCommand('/app/run --fast', 'w', 'cmd'), ['/app/run --fast']);
  assert.deepEqual(parseCommand('["java","-jar","/app.jar"]', 'w', 'cmd'), ['java', '-jar', '/app.jar']);
  usage(() => parseCommand('[java', 'w', 'cmd'), /not valid JSON/);
  usage(() => parseCommand('[1]', 'w', 'cmd'), /array of strings/);
});

test('SRC:DEST splits at the last colon; --layer groups name several', () => {
  assert.deepEqual(parseAdd('a:b/c:/app', 'w'), { src: 'a:b/c', dest: '/app' });
  assert.deepEqual(parseLayerFlag('deps=lib:/app/lib,x.jar:/app/', 'w'), { name: 'deps', files: [{ src: 'lib', dest: '/app/lib' }, { src: 'x.jar', dest: '/app/' }] });
  usage(() => parseAdd('nodest', 'w'), /SRC:DEST/);
  usage(() => parseLayerFlag('bad name=a:/b', 'w'), /layer name/);
});

test('blockport.json: unknown keys and wrong types are one line naming the key', () => {
  usage(() => validateConfig({ form: 'scratch' }, 'f.json'), /f\.json: unknown key "form"/);
  usage(() => validateConfig({ env: { A: 1 } }, 'f.json'), /"env" must be an object of strings/);
  usage(() => validateConfig({ layers: [{ files: [] }] }, 'f.json'), /layers\[0\]: "files" must be a non-empty array/);
  usage(() => validateConfig({ preset: 'rust' }, 'f.json'), /unknown preset "rust"/);
  usage(() => validateConfig({ tag: 'a:1', to: 'oci:x' }, 'f.json'), /not both/);
  const c = validateConfig({ from: 'scratch', layers: [{ name: 'deps', files: ['lib:/app/lib'] }], add: ['app.jar:/app/'], preset: 'java', tag: 'a:1' }, 'f.json');
  assert.deepEqual(c.layers, [{ name: 'deps', files: [{ src: 'lib', dest: '/app/lib' }] }, { files: [{ src: 'app.jar', dest: '/app/' }] }]);
  assert.deepEqual([c.preset, c.to], [['java'], 'a:1']);
});

test('DEST must be absolute and stay inside the image', () => {
  assert.equal(destPath('/app//lib/', 'w'), 'app/lib');
  assert.throws(() => destPath('/app/../../etc', 'w'), (e: unknown) => e instanceof BlockportError && e.code === 'EUNSAFE');
  usage(() => destPath('app', 'w'), /absolute/);
});

test('a layer tree lists each folder before its children, sorted bytewise, and makes missing parents', () => {
  const t = new LayerTree();
  for (const p of ['app/lib/b.jar', 'app/lib.txt', 'app/lib/a.jar', 'app/Z']) t.put({ path: p, type: 'file', size: 0, mode: 0o644, src: '/dev/null' }, 'w');
  assert.deepEqual(t.sorted().map((e) => e.path), ['app', 'app/Z', 'app/lib', 'app/lib/a.jar', 'app/lib/b.jar', 'app/lib.txt']);
  usage(() => t.put({ path: 'app/Z', type: 'file', size: 0, mode: 0o644 }, 'w'), /given twice/);
  usage(() => t.put({ path: 'app/Z/x', type: 'file', size: 0, mode: 0o644 }, 'w'), /below the file/);
});

test('presets find the packages of build output: Gradle/Maven jars, npm and pnpm packages, site-packages dists', () => {
  const m = new RuleMatcher(rulesFor(['java', 'node', 'python']));
  assert.ok(m.fileIsBlock('app/build/install/app/lib/guava-33.jar', 10));
  assert.equal(m.folderOf('srv/node_modules/@aws-sdk/client-s3/dist/index.js', false), 'srv/node_modules/@aws-sdk/client-s3');
  assert.equal(m.folderOf('srv/node_modules/debug/node_modules/ms/index.js', false), 'srv/node_modules/debug');
  assert.equal(m.folderOf('srv/node_modules/.pnpm/ms@2.1.3/node_modules/ms/index.js', false), 'srv/node_modules/.pnpm/ms@2.1.3/node_modules/ms');
  assert.equal(m.folderOf('srv/node_modules/.bin/uuid', false), undefined);
  assert.equal(m.folderOf('usr/local/lib/python3.11/site-packages/numpy-1.26.4.dist-info/RECORD', false), 'usr/local/lib/python3.11/site-packages/numpy-1.26.4.dist-info');
  assert.equal(m.folderOf('usr/local/lib/python3.11/site-packages/six.py', false), undefined);
});

test('a file rewritten after it was listed is refused (its blocks and the diff_id would come from different reads)', async () => {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { addSource, checkUnchanged } = await import('./source-tree.js');
  const dir = await mkdtemp(join(tmpdir(), 'blockport-unchanged-'));
  try {
    await writeFile(join(dir, 'a.jar'), 'one');
    const t = new LayerTree();
    await addSource(t, { src: dir, dest: '/app' }, 'w');
    checkUnchanged(t.sorted());
    await writeFile(join(dir, 'a.jar'), 'three');
    assert.throws(() => checkUnchanged(t.sorted()), (e: unknown) => e instanceof BlockportError && e.code === 'EDIGEST' && /a\.jar: changed while the image was built/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
