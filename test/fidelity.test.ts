/**
 * The vendor's exact image back: blockify an image whose layers GNU gzip (or zstd) made, then
 * materialize it to oci:, oci-archive: and a registry; the manifest digest must be the vendor's.
 * A layer no compressor re-creates, and a recorded compressor that writes other bytes on the
 * receiver, are named; the output then falls back, or is refused with --require-original.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blockport, ok } from './cli.js';
import { tagLayout, taggedBlob, vendorImage, type Blob } from './fidelity-fixtures.js';
import { startRegistry } from './fixtures/registry.js';
import { gnuTarLayer, javaLikeTree, makeTree, run, tempDir, umociImage } from './fixtures/images.js';

describe('materialize gives back the vendor\'s exact manifest', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  let tars: string[];
  const vendor = () => join(t.dir, 'vendor');
  const images: Record<string, Blob> = {};

  before(async () => {
    t = await tempDir('fidelity-e2e');
    env = { BLOCKPORT_HOME: join(t.dir, 'home') };
    tars = [];
    for (const [name, nodes] of [
      ['base', [{ path: 'etc/os-release', type: 'file' as const, content: 'ID=acme\n' }, { path: 'usr/share/doc/README', type: 'file' as const, content: 'x'.repeat(50_000) }]],
      ['app', javaLikeTree({ jars: 6, seed: 11, minSize: 30_000, maxSize: 200_000 })],
    ] as const) {
      const root = join(t.dir, `tree-${name}`);
      await makeTree(root, [...nodes]);
      tars.push(join(t.dir, `${name}.tar`));
      await gnuTarLayer(root, tars[tars.length - 1]);
    }
    images.gzip = await vendorImage(vendor(), tars, { compress: 'gzip -6 -n', mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
    images.zstd = await vendorImage(vendor(), tars, { compress: 'zstd -q -19', mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' });
    images.plain = await vendorImage(vendor(), tars, { compress: 'cat', mediaType: 'application/vnd.oci.image.layer.v1.tar' });
    await tagLayout(vendor(), images);
    for (const tag of Object.keys(images)) await ok(['blockify', `oci:${vendor()}:${tag}`, `app:${tag}`, '--preset', 'java'], env);
  });
  after(() => t.cleanup());

  for (const tag of ['gzip', 'zstd', 'plain']) {
    it(`oci: and oci-archive: outputs of a ${tag} image have the vendor's manifest digest`, async () => {
      const out = join(t.dir, `out-${tag}`);
      const r = await ok(['materialize', `app:${tag}`, `oci:${out}:v1`], env);
      assert.match(r.stdout, /the source's own, byte for byte/);
      const got = await taggedBlob(out, 'v1');
      assert.equal(got.digest, images[tag].digest);
      // every blob the manifest names is there, byte for byte (skopeo reads and checks them)
      await run('skopeo', ['copy', '--quiet', '--insecure-policy', '--preserve-digests', `oci:${out}:v1`, `oci:${join(t.dir, `copy-${tag}`)}:v1`]);
      assert.equal((await taggedBlob(join(t.dir, `copy-${tag}`), 'v1')).digest, images[tag].digest);
      const archive = join(t.dir, `out-${tag}.tar`);
      await ok(['materialize', `app:${tag}`, `oci-archive:${archive}:v1`], env);
      const x = join(t.dir, `x-${tag}`);
      await mkdir(x);
      await run('tar', ['-xf', archive, '-C', x]);
      assert.equal((await taggedBlob(x, 'v1')).digest, images[tag].digest);
    });
  }

  it('blockify names the compressor that re-creates each block-form layer', async () => {
    const r = await ok(['blockify', `oci:${vendor()}:gzip`, 'again:1', '--preset', 'java', '--json'], env);
    const layers = JSON.parse(r.stdout).layers as { blockified: boolean; recipe?: string }[];
    assert.equal(layers[1].blockified, true);
    assert.equal(layers[1].recipe, 'GNU gzip -6');
    // inspect tells what the image keeps: the vendor's manifest digest and each layer's compressor
    const text = (await ok(['inspect', 'app:gzip'], env)).stdout;
    assert.match(text, new RegExp(`source +the vendor's manifest ${images.gzip.digest}, kept`));
    assert.match(text, /\n +2 .*GNU gzip -6 /);
    const d = JSON.parse((await ok(['inspect', 'app:gzip', '--json'], env)).stdout);
    assert.equal(d.source.manifest, images.gzip.digest);
    const bare = JSON.parse((await ok(['blockify', `oci:${vendor()}:gzip`, 'bare-inspect:1', '--preset', 'java', '--no-original', '--json'], env)).stdout);
    assert.equal(bare.layers[1].recipe, undefined);
    assert.match((await ok(['inspect', 'bare-inspect:1'], env)).stdout, /source +none kept/);
  });

  it('a registry receives the vendor\'s manifest digest', async () => {
    const reg = await startRegistry(join(t.dir, 'registry'));
    try {
      await ok(['materialize', 'app:gzip', `docker://${reg.host}/acme/app:1`, '--require-original'], env);
      const res = await fetch(`http://${reg.host}/v2/acme/app/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.headers.get('docker-content-digest'), images.gzip.digest);
    } finally {
      await reg.stop();
    }
  });

  it('the kept source travels through bundle, apply, push and pull: the receiver gets the vendor\'s digest', async () => {
    const bundle = join(t.dir, 'gzip.bpk');
    await ok(['bundle', '--to', 'app:gzip', '-o', bundle], env);
    const there = { BLOCKPORT_HOME: join(t.dir, 'receiver') };
    await ok(['apply', bundle], there);
    const out = join(t.dir, 'received');
    await ok(['materialize', 'app:gzip', `oci:${out}:v1`, '--require-original'], there);
    assert.equal((await taggedBlob(out, 'v1')).digest, images.gzip.digest);
    const reg = await startRegistry(join(t.dir, 'registry-2'));
    try {
      await ok(['push', 'app:gzip', `docker://${reg.host}/acme/bf:1`], there);
      const pulled = { BLOCKPORT_HOME: join(t.dir, 'puller') };
      await ok(['pull', `docker://${reg.host}/acme/bf:1`, 'app:1'], pulled);
      const again = join(t.dir, 'pulled');
      await ok(['materialize', 'app:1', `oci:${again}:v1`, '--require-original'], pulled);
      assert.equal((await taggedBlob(again, 'v1')).digest, images.gzip.digest);
    } finally {
      await reg.stop();
    }
  });

  it('falls back, naming the layer, when the recorded gzip writes other bytes here; --require-original refuses', async () => {
    // another gzip on the receiver: one that ignores the level it is given
    const bin = join(t.dir, 'bin');
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'gzip'), '#!/bin/sh\nexec /bin/gzip -c -n -1\n');
    await chmod(join(bin, 'gzip'), 0o755);
    const path = { ...env, PATH: `${bin}:${process.env.PATH}` };
    const refused = join(t.dir, 'refused');
    const r = await blockport(['materialize', 'app:gzip', `oci:${refused}:v1`, '--require-original'], path);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /layer 2 \(sha256:[0-9a-f]{64}\): GNU gzip -6 no longer re-creates its blob here/);
    // nothing was tagged, and no blob holds the vendor's layer digest with other bytes
    const app = (JSON.parse((await taggedBlob(vendor(), 'gzip')).bytes.toString()) as { layers: Blob[] }).layers[1];
    assert.equal((await readFile(join(refused, 'index.json'), 'utf8').catch(() => '{"manifests":[]}')).includes('"v1"'), false);
    assert.equal(await stat(join(refused, 'blobs', 'sha256', app.digest.slice(7))).then(() => true, () => false), false);
    const out = join(t.dir, 'fallback');
    const f = await ok(['materialize', 'app:gzip', `oci:${out}:v1`], path);
    assert.match(f.stdout, /layer 2: not the source's blob: layer 2 .*GNU gzip -6 no longer re-creates its blob here/);
    assert.match(f.stdout, /a new one, not the source's/);
    const m = JSON.parse((await taggedBlob(out, 'v1')).bytes.toString()) as { layers: Blob[] };
    assert.equal(m.layers[1].mediaType, 'application/vnd.oci.image.layer.v1.tar');
    assert.equal(m.layers[0].digest, images.gzip && (JSON.parse((await taggedBlob(vendor(), 'gzip')).bytes.toString()) as { layers: Blob[] }).layers[0].digest);
  });

  it('falls back, naming the layer, when the recorded compressor is not installed here', async () => {
    // a PATH without zstd: only the layer that needs it is not the source's
    const out = join(t.dir, 'no-zstd');
    const f = await ok(['materialize', 'app:zstd', `oci:${out}:v1`], { ...env, PATH: join(t.dir, 'empty-path') });
    assert.match(f.stdout, /layer 2: not the source's blob: re-create layer 2 \(sha256:[0-9a-f]{64}\) needs the 'zstd' command/);
    assert.match(f.stdout, /a new one, not the source's/);
    const m = JSON.parse((await taggedBlob(out, 'v1')).bytes.toString()) as { layers: Blob[] };
    const vendorLayers = (JSON.parse((await taggedBlob(vendor(), 'zstd')).bytes.toString()) as { layers: Blob[] }).layers;
    assert.equal(m.layers[0].digest, vendorLayers[0].digest, 'the layer blockify left as it was is the vendor\'s blob');
    assert.equal(m.layers[1].mediaType, 'application/vnd.oci.image.layer.v1.tar');
    const r = await blockport(['materialize', 'app:zstd', `oci:${join(t.dir, 'no-zstd-refused')}:v1`, '--require-original'], { ...env, PATH: join(t.dir, 'empty-path') });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /re-create layer 2 \(sha256:[0-9a-f]{64}\) needs the 'zstd' command/);
  });

  it('says which layer a Go gzip writer made, and --require-original refuses before writing', async () => {
    const layout = join(t.dir, 'umoci');
    await umociImage(layout, 'v1', tars);
    const b = await ok(['blockify', `oci:${layout}:v1`, 'go:1', '--preset', 'java'], env);
    assert.match(b.stdout, /layer 2: its compressed blob cannot be re-created \(made by a Go gzip writer/);
    const refused = join(t.dir, 'go-refused');
    const r = await blockport(['materialize', 'go:1', `oci:${refused}:v1`, '--require-original'], env);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /layer 2 \(sha256:[0-9a-f]{64}\) cannot be re-created: blockify found no compressor/);
    assert.deepEqual(await readdir(refused).catch(() => []), []);
    const f = await ok(['materialize', 'go:1', `oci:${join(t.dir, 'go-out')}:v1`], env);
    assert.match(f.stdout, /a new one, not the source's/);
  });

  it('blockify --no-original keeps no source: materialize says the manifest is a new one, --require-original refuses', async () => {
    await ok(['blockify', `oci:${vendor()}:gzip`, 'bare:1', '--preset', 'java', '--no-original'], env);
    const out = join(t.dir, 'bare');
    const r = await ok(['materialize', 'bare:1', `oci:${out}:v1`], env);
    assert.match(r.stdout, /a new one, not the source's/);
    const refused = await blockport(['materialize', 'bare:1', `oci:${join(t.dir, 'bare-refused')}:v1`, '--require-original'], env);
    assert.equal(refused.code, 9, refused.stderr);
    assert.match(refused.stderr, /kept no source manifest/);
  });

  it('explicit --compress still chooses, and a standard image is copied with its own manifest', async () => {
    const out = join(t.dir, 'chosen');
    await ok(['materialize', 'app:gzip', `oci:${out}:v1`, '--compress', 'zstd'], env);
    const m = JSON.parse((await taggedBlob(out, 'v1')).bytes.toString()) as { layers: Blob[] };
    assert.equal(m.layers[1].mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    const copy = join(t.dir, 'std-copy');
    await ok(['materialize', `oci:${vendor()}:gzip`, `oci:${copy}:v1`], env);
    assert.equal((await taggedBlob(copy, 'v1')).digest, images.gzip.digest);
  });
});
