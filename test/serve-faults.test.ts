/**
 * `blockport serve` on bad stores and at shutdown: a missing block fails the manifest before any
 * layer moves; a corrupt block gives a cut-short layer, never a complete wrong one, and nothing
 * enters the cache; SIGTERM in the middle of a splice removes its temp file and exits 0; a
 * non-loopback address needs --allow-remote.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bp, bpOk, copyDir } from './bundle-helpers.js';
import { settled, startServe } from './serve-helpers.js';
import { gnuTarLayer, javaLikeTree, makeTree, tempDir, umociImage } from './fixtures/images.js';

let t: { dir: string; cleanup(): Promise<void> };
let home: string;
const at = (n: string) => join(t.dir, n);

before(async () => {
  t = await tempDir('serve-faults');
  await makeTree(at('jars'), [...javaLikeTree({ jars: 3, seed: 21, minSize: 100_000, maxSize: 200_000 }), { path: 'opt/big.jar', type: 'file', content: { size: 48_000_000, seed: 22 } }]);
  await gnuTarLayer(at('jars'), at('jars.tar'));
  await umociImage(at('oci'), '1', [at('jars.tar')]);
  home = at('store');
  await bpOk(home, ['blockify', `oci:${at('oci')}:1`, 'app:1', '--preset', 'java']);
});
after(() => t.cleanup());

type Json = Record<string, any>;
const blob = async (store: string, digest: string): Promise<Json> => JSON.parse(await readFile(join(store, 'blobs', 'sha256', digest.slice(7)), 'utf8'));

/** The block-form manifest of app:1 in `store`. */
async function blockForm(store: string): Promise<Json> {
  const top = JSON.parse(await readFile(join(store, 'index.json'), 'utf8')).manifests[0];
  const tagged = await blob(store, top.digest);
  // the transport manifest carries the block-form manifest as its config (docs/spec.md 5.1)
  return blob(store, tagged.config?.mediaType === 'application/vnd.blockport.manifest.v1+json' ? tagged.config.digest : tagged.manifests[0].digest);
}

test('a missing block fails the manifest request (404 MANIFEST_BLOB_UNKNOWN), before any layer moves', async () => {
  const store = at('missing');
  await copyDir(home, store);
  const victim = (await blockForm(store)).blocks[0].digest as string;
  await rm(join(store, 'blobs', 'sha256', victim.slice(7)));
  const s = await startServe(store, ['--cache', at('cache-missing')]);
  try {
    const res = await fetch(`${s.url}/v2/app/manifests/1`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
    assert.match(body.errors[0].message, new RegExp(victim));
  } finally {
    await s.stop();
  }
});

test('a corrupt block: the layer response is cut short, never complete, and nothing enters the cache', async () => {
  const store = at('corrupt');
  await copyDir(home, store);
  const manifest = await blockForm(store);
  const small = (manifest.blocks as Json[]).find((b) => b.size < 1_000_000)!;
  const fh = await open(join(store, 'blobs', 'sha256', small.digest.slice(7)), 'r+');
  const one = Buffer.alloc(1);
  await fh.read(one, 0, 1, 100);
  await fh.write(Buffer.from([one[0] ^ 0xff]), 0, 1, 100);
  await fh.close();
  const cache = at('cache-corrupt');
  const s = await startServe(store, ['--cache', cache]);
  try {
    const served = (await (await fetch(`${s.url}/v2/app/manifests/1`)).json()) as Json;
    const layer = served.layers[0];
    const res = await fetch(`${s.url}/v2/app/blobs/${layer.digest}`);
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer(), 'the body ends before Content-Length');
    await settled(s.log);
    assert.ok(s.log.some((l) => l.includes(layer.digest) && l.includes('cut short') && l.includes('does not splice into its diff_id')), s.log.join('\n'));
    assert.deepEqual(await readdir(join(cache, 'sha256')).catch(() => []), [], 'no cache file, no temp file');
  } finally {
    await s.stop();
  }
});

test('SIGTERM while a layer is being spliced: exit 0, the temp file removed, nothing half-written in the cache', async () => {
  const cache = at('cache-term');
  const s = await startServe(home, ['--cache', cache]);
  const served = (await (await fetch(`${s.url}/v2/app/manifests/1`)).json()) as Json;
  const layer = served.layers[0];
  const res = await fetch(`${s.url}/v2/app/blobs/${layer.digest}`);
  const reader = res.body!.getReader();
  await reader.read(); // the splice is under way: its first bytes arrived
  const { code, stdout } = await s.stop('SIGTERM');
  await reader.cancel().catch(() => {});
  assert.equal(code, 0);
  assert.match(stdout, /^stopped: \d+ requests/m);
  const left = await readdir(join(cache, 'sha256')).catch(() => [] as string[]);
  assert.equal(left.filter((n) => n.includes('.tmp-')).length, 0, left.join(' '));
  // the 48 MB splice is normally still running at the signal; then the log says it was stopped
  if (left.length === 0) assert.ok(s.log.some((l) => l.includes('cut short') && l.includes('serving stopped')), s.log.join('\n'));
  for (const f of left) {
    // a layer that did finish before the signal is complete and verified
    const h = createHash('sha256').update(await readFile(join(cache, 'sha256', f))).digest('hex');
    assert.equal(h, f);
  }
});

test('listening on a non-loopback address needs --allow-remote', async () => {
  const r = await bp(home, ['serve', '--listen', '0.0.0.0:0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--allow-remote/);
  assert.equal((await bp(home, ['serve', '--listen', 'nonsense'])).code, 2);
});
