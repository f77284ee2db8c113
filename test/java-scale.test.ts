/**
 * A Java service at a realistic scale: 120 jars on a small base layer, made by GNU tar and umoci.
 * With `--preset java` every jar becomes a block and the dependencies layer shrinks to its import
 * entries; a next version that changes 20% of the jars adds only those jars to the store.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ok } from './cli.js';
import { diffIdsOf, gnuTarLayer, javaLikeTree, makeTree, tempDir, umociImage } from './fixtures/images.js';

const JARS = 120;
const CHANGED = Array.from({ length: JARS / 5 }, (_, i) => i * 5); // 24 jars, 20%

interface Import {
  path: string;
  block: string;
  size: number;
}

describe('a Java service of 120 jars', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let src: string;
  let env: NodeJS.ProcessEnv;
  let blobsDir: string;
  const jarPaths = (changed: number[]) => javaLikeTree({ jars: JARS, seed: 7, changed }).filter((n) => n.path.endsWith('.jar')).map((n) => `/${n.path}`).sort();
  const blobs = async () => new Set(await readdir(blobsDir));

  before(async () => {
    t = await tempDir('java-scale');
    env = { BLOCKPORT_HOME: join(t.dir, 'home') };
    blobsDir = join(t.dir, 'home', 'blobs', 'sha256');
    const layer = async (name: string, nodes: Parameters<typeof makeTree>[1]) => {
      await makeTree(join(t.dir, name), nodes);
      await gnuTarLayer(join(t.dir, name), join(t.dir, `${name}.tar`));
      return join(t.dir, `${name}.tar`);
    };
    const base = await layer('base', [
      { path: 'etc/os-release', type: 'file', content: 'ID=tiny\nVERSION_ID=1\n' },
      { path: 'bin/sh', type: 'file', mode: 0o755, content: '#!/bin/true\n' },
      { path: 'usr/lib/libc.so.6', type: 'file', content: { size: 300_000, seed: 70 } },
    ]);
    const deps1 = await layer('deps1', javaLikeTree({ jars: JARS, seed: 7 }));
    const deps2 = await layer('deps2', javaLikeTree({ jars: JARS, seed: 7, changed: CHANGED }));
    src = join(t.dir, 'src');
    await umociImage(src, 'v1', [base, deps1], { cmd: ['java', '-jar', '/usr/share/java/lib-0-1.0.0.jar'] });
    await umociImage(src, 'v2', [base, deps2], { cmd: ['java', '-jar', '/usr/share/java/lib-0-1.0.1.jar'] });
  });
  after(() => t.cleanup());

  it('turns every jar into a block and the dependencies layer into under 1% of its size', async (tc) => {
    const r = JSON.parse((await ok(['blockify', `oci:${src}:v1`, 'svc:1', '--preset', 'java', '--json'], env)).stdout);
    const [base, deps] = r.layers;
    assert.equal(base.blockified, false, 'the base layer has no jar and stays as it was');
    assert.equal(deps.blocks, JARS);
    assert.equal(deps.newBlocks, JARS);
    tc.diagnostic(`dependencies layer: ${deps.inputSize} bytes (${deps.uncompressedSize} uncompressed) -> ${deps.outputSize} bytes in block form, ${(deps.outputSize / deps.inputSize * 100).toFixed(3)}%`);
    assert.ok(deps.inputSize > 100_000_000, `fixture too small: ${deps.inputSize}`);
    assert.ok(deps.outputSize < deps.inputSize / 100, `${deps.outputSize} is not under 1% of ${deps.inputSize}`);

    const d = JSON.parse((await ok(['inspect', 'svc:1', '--json'], env)).stdout);
    const imports = d.layers[1].imports as Import[];
    assert.deepEqual(imports.map((i) => i.path).sort(), jarPaths([]));
    assert.equal(d.blocks.count, JARS);
    assert.equal(new Set(imports.map((i) => i.block)).size, JARS, 'distinct jars, distinct blocks');
    for (const i of imports) assert.equal((await stat(join(blobsDir, i.block.slice(7)))).size, i.size);
  });

  it('stores a version that shares 80% of the jars at the cost of the 20% that changed', async (tc) => {
    const before = await blobs();
    const r = JSON.parse((await ok(['blockify', `oci:${src}:v2`, 'svc:2', '--preset', 'java', '--json'], env)).stdout);
    const deps = r.layers[1];
    assert.equal(deps.blocks, JARS);
    assert.equal(deps.newBlocks, CHANGED.length);
    const added = [...(await blobs())].filter((b) => !before.has(b));

    const v1 = (JSON.parse((await ok(['inspect', 'svc:1', '--json'], env)).stdout).layers[1].imports as Import[]);
    const v2 = (JSON.parse((await ok(['inspect', 'svc:2', '--json'], env)).stdout).layers[1].imports as Import[]);
    const shared = v2.filter((i) => v1.some((o) => o.block === i.block));
    assert.equal(shared.length, JARS - CHANGED.length);
    const changed = v2.filter((i) => !shared.includes(i));
    assert.deepEqual(changed.map((i) => i.path).sort(), jarPaths(CHANGED).filter((p) => !jarPaths([]).includes(p)));
    // new blobs: the changed jars, then the block-form layer, config, manifest, carrier and index
    const addedBlocks = added.filter((b) => changed.some((i) => i.block === `sha256:${b}`));
    assert.equal(addedBlocks.length, CHANGED.length);
    const others = added.length - addedBlocks.length;
    let otherBytes = 0;
    for (const b of added) if (!addedBlocks.includes(b)) otherBytes += (await stat(join(blobsDir, b))).size;
    const jarBytes = changed.reduce((n, i) => n + i.size, 0);
    tc.diagnostic(`second version: ${added.length} new blobs: ${addedBlocks.length} jars (${jarBytes} bytes) + ${others} others (${otherBytes} bytes)`);
    assert.ok(others <= 5, `${others} blobs besides the changed jars`);
    assert.ok(otherBytes < 1_000_000, `${otherBytes} bytes besides the changed jars`);
  });

  it('materializes the second version to the same diff_ids', async () => {
    const out = join(t.dir, 'out');
    await ok(['materialize', 'svc:2', `oci:${out}:2`], env);
    assert.deepEqual(await diffIdsOf(out, '2'), await diffIdsOf(src, 'v2'));
  });
});
