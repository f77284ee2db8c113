/**
 * `blockport serve` at a realistic size: a Java service of 80 jars (about 90 MB) pulled by skopeo
 * from a cold cache (every block-form layer spliced on the fly) and again from the warm cache,
 * then its upgrade (16 jars and the app changed). Prints the timings and what moved against a
 * plain copy (`node --test dist/test/serve-scale.test.js`); asserts the bytes and a memory bound.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bpOk } from './bundle-helpers.js';
import { startServe, type Served } from './serve-helpers.js';
import { gnuTarLayer, javaLikeTree, makeTree, readImage, skopeoCopy, tempDir, umociImage, type FsNode } from './fixtures/images.js';

const JARS = { jars: 80, seed: 31, minSize: 200_000, maxSize: 2_000_000 };
const CHANGED = Array.from({ length: 16 }, (_, i) => i * 5);
let t: { dir: string; cleanup(): Promise<void> };
let home: string;
let server: Served;
const at = (n: string) => join(t.dir, n);
const keep = ['--dest-oci-accept-uncompressed-layers'];
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

before(async () => {
  t = await tempDir('serve-scale');
  const trees: Record<string, FsNode[]> = {
    base: [{ path: 'etc/os-release', type: 'file', content: 'ID=fixture\n' }, { path: 'usr/lib/libbig.so', type: 'file', content: { size: 6_000_000, seed: 30 } }],
    jars1: javaLikeTree(JARS),
    jars2: javaLikeTree({ ...JARS, changed: CHANGED }),
    app1: [{ path: 'app/app.jar', type: 'file', content: { size: 400_000, seed: 41 } }],
    app2: [{ path: 'app/app.jar', type: 'file', content: { size: 400_000, seed: 42 } }],
  };
  for (const [name, nodes] of Object.entries(trees)) {
    await makeTree(at(name), nodes);
    await gnuTarLayer(at(name), at(`${name}.tar`));
  }
  await umociImage(at('oci'), '1', [at('base.tar'), at('jars1.tar'), at('app1.tar')]);
  await umociImage(at('oci'), '2', [at('base.tar'), at('jars2.tar'), at('app2.tar')]);
  home = at('store');
  await bpOk(home, ['blockify', `oci:${at('oci')}:1`, 'app:1', '--preset', 'java']);
  await bpOk(home, ['blockify', `oci:${at('oci')}:2`, 'app:2', '--preset', 'java']);
  server = await startServe(home, ['--cache', at('cache')]);
});
after(async () => {
  await server?.stop('SIGKILL');
  await t.cleanup();
});

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** The server's peak resident memory so far (Linux). */
async function peakRss(pid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : undefined;
}

test('pulls of a 90 MB block-form image: cold cache, warm cache, upgrade; bounded memory', async (ctx) => {
  const cold = await timed(() => skopeoCopy(`docker://${server.addr}/app:1`, `oci:${at('cold')}:1`, keep));
  const warm = await timed(() => skopeoCopy(`docker://${server.addr}/app:1`, `oci:${at('warm')}:1`, keep));
  const upgrade = await timed(() => skopeoCopy(`docker://${server.addr}/app:2`, `oci:${at('cold')}:2`, keep));
  const rss = await peakRss(server.child.pid!);
  const materialize = await timed(async () => void (await bpOk(home, ['materialize', 'app:1', `oci:${at('materialized')}:1`])));
  const { code, stdout } = await server.stop('SIGTERM');
  assert.equal(code, 0);
  const summary = /image pulls got (\d+) blobs .* move (\d+) blobs/.exec(stdout);
  assert.ok(summary && Number(summary[1]) < Number(summary[2]), 'the upgrade skipped the unchanged layer');
  const v1 = await readImage(at('cold'), '1');
  const total = v1.manifest.layers.reduce((n: number, l: { size: number }) => n + l.size, 0);
  const lines = [
    `image: ${mb(total)} of layers`,
    `skopeo copy, cold cache (splicing): ${cold.toFixed(0)} ms (${((total / 1e6) / (cold / 1000)).toFixed(0)} MB/s)`,
    `skopeo copy, warm cache: ${warm.toFixed(0)} ms (${((total / 1e6) / (warm / 1000)).toFixed(0)} MB/s)`,
    `upgrade to app:2 into the same oci: dir: ${upgrade.toFixed(0)} ms`,
    `for comparison, blockport materialize app:1 oci:DIR: ${materialize.toFixed(0)} ms`,
    `server peak RSS: ${rss ? mb(rss) : 'unknown'}`,
    stdout.trim().split('\n').pop()!,
  ];
  for (const l of lines) ctx.diagnostic(l);
  if (rss) assert.ok(rss < 200e6, `peak RSS ${mb(rss)}`);
  const v2 = await readImage(at('cold'), '2');
  assert.equal(v2.manifest.layers[0].digest, v1.manifest.layers[0].digest);
  assert.deepEqual(v2.config.rootfs.diff_ids, (await readImage(at('oci'), '2')).config.rootfs.diff_ids);
});
