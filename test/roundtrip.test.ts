/**
 * materialize(blockify(x)) is x: images built by GNU tar, umoci and skopeo, blockified and
 * materialized by the CLI, must come back with the same diff_ids, the same config blob, and a root
 * file system that umoci unpacks to the same tree.
 */
import assert from 'node:assert/strict';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { materializeToStream } from '../src/blocks/materialize.js';
import { blockify } from '../src/blocks/blockify.js';
import { rulesFor } from '../src/blocks/rules.js';
import { openImage, openWriter } from '../src/index.js';
import { blockport, ok } from './cli.js';
import {
  diffIdsOf, gnuTarLayer, javaLikeTree, makeTree, nastyTree, nodeModulesTree, pythonTree, readImage, run,
  skopeoCopy, tempDir, treeSignature, umociImage, unpackRootfs, whiteoutLayer,
} from './fixtures/images.js';

describe('blockify + materialize round trip on images made by other tools', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let src: string; // oci layout made by umoci
  let env: NodeJS.ProcessEnv;

  before(async () => {
    t = await tempDir('roundtrip');
    env = { BLOCKPORT_HOME: join(t.dir, 'home') };
    const layers: string[] = [];
    const layer = async (name: string, nodes: Parameters<typeof makeTree>[1], format: 'posix' | 'gnu' = 'posix') => {
      const root = join(t.dir, `tree-${name}`);
      await makeTree(root, nodes);
      const tar = join(t.dir, `${name}.tar`);
      await gnuTarLayer(root, tar, { format });
      layers.push(tar);
    };
    await layer('nasty', nastyTree());
    await layer('java', javaLikeTree({ jars: 12, seed: 1, minSize: 20_000, maxSize: 300_000 }));
    await layer('node', nodeModulesTree({ packages: 6, seed: 2 }), 'gnu');
    await layer('python', pythonTree({ packages: 3, seed: 3, soSize: 30_000 }));
    const wh = join(t.dir, 'whiteouts.tar');
    await whiteoutLayer(wh, { remove: ['usr/share/java/lib-0-1.0.0.jar', 'nasty/empty'], opaque: ['app/node_modules/pkg-1'], add: [{ path: 'usr/share/java/lib-0-2.0.0.jar', type: 'file', content: { size: 50_000, seed: 9 } }] });
    layers.push(wh);
    src = join(t.dir, 'src');
    await umociImage(src, 'v1', layers, { cmd: ['/bin/sh'] });
  });
  after(() => t.cleanup());

  for (const form of ['oci', 'docker-archive'] as const) {
    it(`from ${form}: same diff_ids, same config, same root file system`, async () => {
      const original = await readImage(src, 'v1');
      let input = `oci:${src}:v1`;
      if (form === 'docker-archive') {
        input = `docker-archive:${join(t.dir, 'saved.tar')}`;
        await skopeoCopy(`oci:${src}:v1`, `${input}:app:1`);
      }
      const bf = join(t.dir, `bf-${form}`);
      const r = JSON.parse((await ok(['blockify', input, `oci:${bf}:1`, '--preset', 'java', '--preset', 'node', '--preset', 'python', '--json'], env)).stdout);
      assert.equal(r.layers.length, 5);
      assert.ok(r.blocks.length >= 12 + 6 + 3, `blocks: ${r.blocks.length}`);
      // the java layer: every jar is a block and the layer shrank to import entries
      const java = r.layers[1];
      assert.equal(java.blocks, 12);
      assert.ok(java.outputSize < java.inputSize / 20, `${java.outputSize} vs ${java.inputSize}`);
      if (form === 'docker-archive') {
        // uncompressed layers in a file are blockified by position (copy threads); streamed, the result is the same image
        const reader = await openImage(input);
        const streamed = Object.assign(Object.create(Object.getPrototypeOf(reader)), reader, { locate: async () => undefined });
        const again = await blockify(streamed, await openWriter(`oci:${join(t.dir, 'bf-streamed')}:1`), { rules: rulesFor(['java', 'node', 'python']) });
        await reader.close();
        assert.equal(again.manifest.digest, r.manifest.digest, 'streamed and positional blockify agree');
        assert.deepEqual(again.layers.map((l) => [l.blocks, l.newBlocks, l.outputSize]), r.layers.map((l: { blocks: number; newBlocks: number; outputSize: number }) => [l.blocks, l.newBlocks, l.outputSize]));
      }

      const out = join(t.dir, `std-${form}`);
      await ok(['materialize', `oci:${bf}:1`, `oci:${out}:1`], env);
      const back = await readImage(out, '1');
      assert.deepEqual(await diffIdsOf(out, '1'), original.config.rootfs.diff_ids);
      assert.equal(back.manifest.config.digest, original.manifest.config.digest);

      const archive = join(t.dir, `std-${form}.tar`);
      await ok(['materialize', `oci:${bf}:1`, `docker-archive:${archive}:app:1`], env);
      const inspected = JSON.parse((await run('skopeo', ['inspect', `docker-archive:${archive}`])).stdout);
      assert.deepEqual(inspected.Layers, original.config.rootfs.diff_ids);
      // the file is written from copy plans (file ranges); the stream from the layers read in order: the same bytes
      const reader = await openImage(`oci:${bf}:1`);
      const streamed: Buffer[] = [];
      const sink = new Writable({ write: (c: Buffer, _e, cb) => (streamed.push(c), cb()) });
      await materializeToStream(reader, sink, ['app:1']);
      await reader.close();
      assert.ok(Buffer.concat(streamed).equals(await readFile(archive)), 'docker-archive file and stream are byte for byte the same');
      const configRaw = JSON.parse((await run('skopeo', ['inspect', '--config', '--raw', `docker-archive:${archive}`])).stdout);
      assert.deepEqual(configRaw.rootfs.diff_ids, original.config.rootfs.diff_ids);

      const a = await unpackRootfs(`${src}:v1`, join(t.dir, `unpack-a-${form}`));
      const b = await unpackRootfs(`${out}:1`, join(t.dir, `unpack-b-${form}`));
      assert.deepEqual(await treeSignature(b, { mtime: true }), await treeSignature(a, { mtime: true }));
    });
  }

  it('reads zstd layers and writes gzip, zstd and oci-archive outputs other tools accept', async () => {
    const original = await readImage(src, 'v1');
    const zst = join(t.dir, 'zstd-src');
    await skopeoCopy(`oci:${src}:v1`, `oci:${zst}:v1`, ['--dest-compress-format', 'zstd']);
    const layers = (await readImage(zst, 'v1')).manifest.layers as Array<{ mediaType: string }>;
    assert.ok(layers.every((l) => l.mediaType.endsWith('+zstd')), 'skopeo wrote zstd layers');
    const bf = join(t.dir, 'bf-zstd');
    await ok(['blockify', `oci:${zst}:v1`, `oci:${bf}:1`, '--preset', 'java', '--compress', 'zstd'], env);
    for (const compress of ['gzip', 'zstd'] as const) {
      const out = join(t.dir, `std-${compress}`);
      await ok(['materialize', `oci:${bf}:1`, `oci:${out}:1`, '--compress', compress], env);
      const back = await readImage(out, '1');
      assert.deepEqual(back.config.rootfs.diff_ids, original.config.rootfs.diff_ids);
      const inspected = JSON.parse((await run('skopeo', ['inspect', `oci:${out}:1`])).stdout);
      assert.equal(inspected.Layers.length, 5);
      assert.ok(back.manifest.layers.every((l: { mediaType: string }) => l.mediaType.endsWith(`+${compress}`)), `every layer is ${compress}`);
      // skopeo decompresses every layer and checks it against the config's diff_ids (docker-archive: gzip only)
      if (compress === 'gzip') await skopeoCopy(`oci:${out}:1`, `docker-archive:${join(t.dir, `check-${compress}.tar`)}:x:1`);
    }
    const archive = join(t.dir, 'std.oci.tar');
    await ok(['materialize', `oci:${bf}:1`, `oci-archive:${archive}:1`], env);
    const inspected = JSON.parse((await run('skopeo', ['inspect', '--config', '--raw', `oci-archive:${archive}:1`])).stdout);
    assert.deepEqual(inspected.rootfs.diff_ids, original.config.rootfs.diff_ids);
  });

  it('shares blocks between images in the store and lists them', async () => {
    await ok(['blockify', `oci:${src}:v1`, 'app:1', '--preset', 'java'], env);
    const before = (await readdir(join(env.BLOCKPORT_HOME!, 'blobs', 'sha256'))).length;
    const r = JSON.parse((await ok(['blockify', `oci:${src}:v1`, 'app-copy:1', '--preset', 'java', '--json'], env)).stdout);
    assert.equal(r.layers.reduce((n: number, l: { newBlocks: number }) => n + l.newBlocks, 0), 0);
    const afterCount = (await readdir(join(env.BLOCKPORT_HOME!, 'blobs', 'sha256'))).length;
    assert.ok(afterCount - before <= 2, `only the index may be new, got ${afterCount - before} blobs`);
    const images = JSON.parse((await ok(['images', '--json'], env)).stdout);
    assert.deepEqual(images.map((i: { name: string }) => i.name), ['app-copy:1', 'app:1']);
    assert.ok(images.every((i: { blockForm: boolean; blocks: number }) => i.blockForm && i.blocks > 0));
  });

  it('inspect lists import entries with their blocks', async () => {
    const d = JSON.parse((await ok(['inspect', 'app:1', '--json'], env)).stdout);
    assert.equal(d.blockForm, true);
    const imports = d.layers[1].imports as Array<{ path: string; block: string }>;
    assert.equal(imports.length, 12);
    assert.ok(imports.every((i) => i.path.startsWith('/usr/share/java/') && i.path.endsWith('.jar') && i.block.startsWith('sha256:')));
    const text = (await ok(['inspect', 'app:1'], env)).stdout;
    assert.match(text, /block form: \d+ blocks/);
  });

  it('keeps a regular file named .import.* unambiguous', async () => {
    const bf = join(t.dir, 'bf-oci');
    const d = JSON.parse((await ok(['inspect', `oci:${bf}:1`, '--json'])).stdout);
    const trap = d.layers[0].imports.find((i: { path: string }) => i.path === '/nasty/.import.trap');
    assert.ok(trap, 'the .import.trap file became an import of itself');
  });

  it('refuses to write a block-form image as a docker-archive', async () => {
    const r = await blockport(['blockify', `oci:${src}:v1`, `docker-archive:${join(t.dir, 'x.tar')}`]);
    assert.equal(r.code, 9);
    assert.match(r.stderr, /^blockport: .*docker-archive/);
    await assert.rejects(stat(join(t.dir, 'x.tar')));
  });

  it('reads a layout written by skopeo with a config it did not touch', async () => {
    const copy = join(t.dir, 'skopeo-oci');
    await skopeoCopy(`oci:${src}:v1`, `oci:${copy}:v1`);
    const bf = join(t.dir, 'bf-skopeo');
    await ok(['blockify', `oci:${copy}:v1`, `oci:${bf}:x`, '--min-size', '100K'], env);
    const out = join(t.dir, 'std-skopeo.tar');
    await ok(['materialize', `oci:${bf}:x`, `docker-archive:${out}`], env);
    const cfg = (await readImage(src, 'v1')).manifest.config.digest as string;
    const manifest = JSON.parse((await run('tar', ['-xOf', out, 'manifest.json'])).stdout);
    const configFile = manifest[0].Config as string;
    const bytes = (await run('tar', ['-xOf', out, configFile])).stdout;
    assert.equal(`sha256:${configFile.replace(/\.json$/, '').replace(/^blobs\/sha256\//, '')}`, cfg);
    assert.ok(bytes.length > 0);
    assert.ok((await readFile(join(src, 'index.json'))).length > 0);
  });
});
