/**
 * The whole chain ends in a running container: an image whose entrypoint is a real (static)
 * program is blockified (the program itself becomes a block), shipped as a bundle, applied on a
 * customer store, materialized, loaded into podman and run. Skipped where this machine cannot run
 * containers at all (checked by running the original image first).
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ok } from './cli.js';
import { testPodman, type TestPodman } from './fixtures/podman.js';
import { gnuTarLayer, javaLikeTree, makeTree, run, skopeoCopy, tempDir, umociImage } from './fixtures/images.js';

const GREETING = 'hello from a materialized image';
let t: { dir: string; cleanup(): Promise<void> };
let skip: string | undefined;
let pm: TestPodman;

before(async () => {
  t = await tempDir('podman');
  try {
    pm = await testPodman(join(t.dir, 'podman'));
    const src = join(t.dir, 'hello.c');
    await writeFile(src, `#include <stdio.h>\nint main(void){puts("${GREETING}");return 0;}\n`);
    await run('gcc', ['-static', '-O2', src, '-o', join(t.dir, 'hello')]);
  } catch (err) {
    skip = `podman, runc or a static C toolchain is missing: ${(err as Error).message.split('\n')[0]}`;
  }
});
after(() => t.cleanup());

test('a blockified, bundled, applied and materialized image runs in podman', async (ctx) => {
  if (skip) return ctx.skip(skip);
  const root = join(t.dir, 'root');
  await makeTree(root, javaLikeTree({ jars: 6, seed: 11, minSize: 150_000, maxSize: 400_000 }));
  await run('cp', [join(t.dir, 'hello'), join(root, 'hello')]);
  const layer = join(t.dir, 'layer.tar');
  await gnuTarLayer(root, layer);
  const oci = join(t.dir, 'oci');
  await umociImage(oci, '1', [layer], { cmd: ['/hello'] });
  const original = join(t.dir, 'original.tar');
  await skopeoCopy(`oci:${oci}:1`, `docker-archive:${original}:localhost/original:1`);
  try {
    assert.equal((await pm.runArchive(original, 'localhost/original:1')).trim(), GREETING);
  } catch (err) {
    return ctx.skip(`this machine cannot run containers: ${(err as Error).message.split('\n').slice(-1)[0].slice(0, 200)}`);
  }

  const vendor = { BLOCKPORT_HOME: join(t.dir, 'vendor') };
  const customer = { BLOCKPORT_HOME: join(t.dir, 'customer') };
  const r = JSON.parse((await ok(['blockify', `oci:${oci}:1`, 'app:1', '--preset', 'java', '--min-size', '500K', '--json'], vendor)).stdout);
  assert.ok(r.blocks.some((b: { annotations: Record<string, string> }) => b.annotations['io.blockport.block.path'] === '/hello'), 'the program is a block');
  const bundle = join(t.dir, 'app-1.bpk');
  await ok(['bundle', '--to', 'app:1', '-o', bundle], vendor);
  await ok(['apply', bundle], customer);
  const out = join(t.dir, 'materialized.tar');
  await ok(['materialize', 'app:1', `docker-archive:${out}:localhost/app:1`], customer);
  assert.equal((await pm.runArchive(out, 'localhost/app:1')).trim(), GREETING);
});
