/**
 * Signatures and SBOMs travel with their image, as an air-gapped customer whose cluster admits only
 * signed images needs: a vendor layout signed the cosign way (key pair, `sha256-<hex>.sig`) with an
 * OCI 1.1 SBOM (itself signed) goes through bundle and apply into another store, then out to a
 * layout and a 127.0.0.1 registry, where the signature still verifies as `cosign verify --key` checks
 * it. Tampered signatures and payloads fail that check; referrers of other images stay behind;
 * a referrer with a missing or corrupt blob is refused before anything is written.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findReferrers } from '../src/referrers/copy.js';
import { referrerSource } from '../src/referrers/places.js';
import { SOURCE_MANIFEST, standsFor } from '../src/referrers/referrer.js';
import { Store } from '../src/store/store.js';
import { bp, bpOk, bundleManifest, copyDir, refusedApply } from './bundle-helpers.js';
import { attachSbom, keyPair, Layout, layoutPlace, registryPlace, sign, sigTag, verify, type Json } from './fixtures/cosign.js';
import { gnuTarLayer, makeTree, tempDir, umociImage } from './fixtures/images.js';
import { startRegistry, type LocalRegistry } from './fixtures/registry.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const oneLine = (stderr: string) => assert.equal(stderr.trim().split('\n').length, 1, stderr);

describe('signatures, SBOMs and attestations travel with the image', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let reg: LocalRegistry;
  let env: NodeJS.ProcessEnv;
  const keys = keyPair();
  const at = (n: string) => join(t.dir, n);
  let vendor: Layout;
  /** The manifest digests of tags 1 and 2 of the vendor layout, and the SBOM of 1. */
  let d1: Json;
  let d2: Json;
  let sbom1: Json;

  before(async () => {
    t = await tempDir('referrers');
    await mkdir(at('docker-config'));
    env = { DOCKER_CONFIG: at('docker-config'), BLOCKPORT_REGISTRY_AUTH: '', REGISTRY_AUTH_FILE: '', XDG_RUNTIME_DIR: '' };
    for (const v of ['1', '2']) {
      await makeTree(at(`tree${v}`), [{ path: 'app/app.jar', type: 'file', content: { size: 300_000, seed: Number(v) } }, { path: 'etc/version', type: 'file', content: `${v}\n` }]);
      await gnuTarLayer(at(`tree${v}`), at(`layer${v}.tar`));
      await umociImage(at('vendor'), v, [at(`layer${v}.tar`)]);
    }
    vendor = new Layout(at('vendor'));
    d1 = (await vendor.tagged('1'))!;
    d2 = (await vendor.tagged('2'))!;
    await sign(vendor, 'registry.example.com/app:1', d1.digest, keys.privateKey);
    await sign(vendor, 'registry.example.com/app:2', d2.digest, keys.privateKey);
    sbom1 = await attachSbom(vendor, d1, 'app 1');
    // a signature of the SBOM: a referrer of a referrer
    await sign(vendor, 'registry.example.com/app:1', sbom1.digest, keys.privateKey);
    await attachSbom(vendor, d2, 'app 2');
    reg = await startRegistry(at('registry'));
  });

  after(async () => {
    await reg?.stop();
    await t?.cleanup();
  });

  it('the emulated cosign verify passes on the vendor layout and fails on a bad key, a payload of another digest and a tampered signature', async () => {
    assert.equal(await verify(layoutPlace(vendor), '1', keys.publicKey), 'registry.example.com/app:1');
    await assert.rejects(verify(layoutPlace(vendor), '1', keyPair().publicKey), /invalid signature/);
    const bad = new Layout(at('bad'));
    await copyDir(at('vendor'), at('bad'));
    await sign(bad, 'registry.example.com/app:1', d1.digest, keys.privateKey, { payloadDigest: d2.digest });
    await assert.rejects(verify(layoutPlace(bad), '1', keys.publicKey), /payload names sha256:/);
    // flip the signature in the layer annotation: a new manifest under the same tag
    const good = (await bad.tagged(sigTag(d1.digest)))!;
    await sign(bad, 'registry.example.com/app:1', d1.digest, keys.privateKey);
    const m = JSON.parse((await bad.blob((await bad.tagged(sigTag(d1.digest)))!.digest)).toString());
    const s = m.layers[0].annotations['dev.cosignproject.cosign/signature'] as string;
    m.layers[0].annotations['dev.cosignproject.cosign/signature'] = s.slice(0, 5) + (s[5] === 'A' ? 'B' : 'A') + s.slice(6);
    const tampered = await bad.put(Buffer.from(JSON.stringify(m)));
    await bad.add({ ...good, ...tampered, annotations: { [REF_NAME]: sigTag(d1.digest) } });
    await assert.rejects(verify(layoutPlace(bad), '1', keys.publicKey), /invalid signature/);
  });

  it('bundle carries the referrers of the image (and only its own), apply lists them, and the signature verifies from a layout and a registry made on the receiver', async () => {
    const bundle = at('app-1.bpk');
    const made = JSON.parse((await bpOk(at('home-v'), ['bundle', '--to', `app:1=oci:${at('vendor')}:1`, '-o', bundle, '--json'])).stdout);
    assert.equal(made.referrers.count, 3, 'the signature, the SBOM and the SBOM signature');
    const listed = ((await bundleManifest(bundle)) as unknown as { referrers: Json[] }).referrers;
    assert.deepEqual(listed.map((r) => r.tag ?? r.descriptor.artifactType).sort(), [sigTag(d1.digest), sigTag(sbom1.digest), 'application/spdx+json'].sort());
    assert.ok(listed.every((r) => r.subject === d1.digest || r.subject === sbom1.digest), 'no referrer of image 2');
    const carried = new Set((await bundleManifest(bundle)).blobs.map((b) => b.digest));
    assert.ok(carried.has((await vendor.tagged(sigTag(d1.digest)))!.digest));
    assert.ok(!carried.has((await vendor.tagged(sigTag(d2.digest)))!.digest), "image 2's signature stays behind");

    const home = at('home-c');
    assert.match((await bpOk(home, ['apply', bundle, '--dry-run'])).stdout, /referrers: 3 signature\(s\), SBOM\(s\) or attestation\(s\) would be listed/);
    const applied = JSON.parse((await bpOk(home, ['apply', bundle, '--json'])).stdout);
    assert.equal(applied.referrers, 3);
    const images = JSON.parse((await bpOk(home, ['images', '--json'])).stdout) as Json[];
    assert.deepEqual(images.map((i) => i.name), ['app:1'], 'signatures are not images');
    const store = await new Layout(home).index();
    assert.ok(store.manifests.some((m: Json) => m.annotations?.[REF_NAME] === `app:${sigTag(d1.digest)}`));
    const again = JSON.parse((await bpOk(home, ['apply', bundle, '--json'])).stdout);
    assert.equal(again.noop, true, 'applying twice changes nothing');
    assert.deepEqual(await new Layout(home).index(), store, 'no referrer listed twice');

    // offline: out to a layout and a registry, as the cluster's admission policy reads them
    await bpOk(home, ['copy', 'app:1', `oci:${at('out')}:1`]);
    assert.equal(await verify(layoutPlace(new Layout(at('out'))), '1', keys.publicKey), 'registry.example.com/app:1');
    const out = await new Layout(at('out')).index();
    assert.ok(out.manifests.some((m: Json) => m.digest === sbom1.digest), 'the SBOM is listed in the layout');
    // oci:DIR without a tag still names the layout's one image: referrers are not images
    await bpOk(home, ['copy', `oci:${at('out')}`, `oci:${at('out-untagged')}:1`]);
    assert.equal((await new Layout(at('out-untagged')).tagged('1'))!.digest, d1.digest);
    const r = await bpOk(home, ['copy', 'app:1', `docker://${reg.host}/app:1`, '--json'], env);
    assert.equal(JSON.parse(r.stdout).referrers.referrers, 3);
    assert.equal(await verify(registryPlace(reg.host, 'app'), '1', keys.publicKey), 'registry.example.com/app:1');
    // distribution 2.8 has no referrers API: the SBOM is found by the referrers tag schema
    const schema = (await (await fetch(`http://${reg.host}/v2/app/manifests/${sigTag(d1.digest).replace(/\.sig$/, '')}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } })).json()) as Json;
    assert.deepEqual(schema.manifests.map((m: Json) => [m.digest, m.artifactType]), [[sbom1.digest, 'application/spdx+json']]);
    // and back from the registry into a fresh layout: the registry's listing is read
    await bpOk(home, ['copy', `docker://${reg.host}/app:1`, `oci:${at('out2')}:1`], env);
    assert.equal(await verify(layoutPlace(new Layout(at('out2'))), '1', keys.publicKey), 'registry.example.com/app:1');
    assert.ok((await new Layout(at('out2')).tagged(sigTag(sbom1.digest))), "the SBOM's signature came too");

    // rmi drops the referrers of the image it untags (and theirs), so gc can free them
    const gone = JSON.parse((await bpOk(home, ['rmi', 'app:1', '--json'])).stdout);
    assert.equal(gone.referrers, 3);
    assert.deepEqual((await new Layout(home).index()).manifests, []);
  });

  it('--no-referrers leaves them out of the bundle', async () => {
    const bundle = at('bare.bpk');
    const made = JSON.parse((await bpOk(at('home-v'), ['bundle', '--to', `app:1=oci:${at('vendor')}:1`, '-o', bundle, '--no-referrers', '--json'])).stdout);
    assert.equal(made.referrers.count, 0);
    assert.equal(((await bundleManifest(bundle)) as unknown as { referrers?: unknown }).referrers, undefined);
    await bpOk(at('home-bare'), ['apply', bundle]);
    await assert.rejects(verify(layoutPlace(new Layout(at('home-bare'))), 'app:1', keys.publicKey), /no signatures/);
  });

  it('apply refuses a bundle whose signature payload was altered on the way, and the store is unchanged', async () => {
    const bundle = at('signed.bpk');
    await bpOk(at('home-v'), ['bundle', '--to', `app:1=oci:${at('vendor')}:1`, '-o', bundle, '--no-compress']);
    const payloadDigest = JSON.parse((await vendor.blob((await vendor.tagged(sigTag(d1.digest)))!.digest)).toString()).layers[0].digest as string;
    const bytes = await readFile(bundle);
    const name = Buffer.from(`blobs/sha256/${payloadDigest.slice(7)}`);
    const header = bytes.indexOf(name);
    assert.ok(header >= 0, 'the payload travels as its own member');
    bytes[header + 512 + 10] ^= 1; // a byte of the member's data: "docker-manifest-digest" now differs
    await writeFile(at('altered.bpk'), bytes);
    await refusedApply(at('home-bare'), at('home-altered'), at('altered.bpk'), 4, new RegExp(`${payloadDigest.slice(7)}.*digest|digest.*${payloadDigest.slice(7)}`));
  });

  it('a referrer listed for the image whose manifest names another subject is not carried', async () => {
    await copyDir(at('vendor'), at('liar'));
    const liar = new Layout(at('liar'));
    const other = await attachSbom(liar, d2, 'not app 1');
    const otherSig = await sign(liar, 'registry.example.com/app:2', other.digest, keys.privateKey);
    const idx = await liar.index();
    for (const m of idx.manifests) if (m.digest === other.digest) m.annotations = { 'io.blockport.referrer.subject': d1.digest };
    await writeFile(join(at('liar'), 'index.json'), JSON.stringify(idx));
    const made = JSON.parse((await bpOk(at('home-v'), ['bundle', '--to', `app:1=oci:${at('liar')}:1`, '-o', at('liar.bpk'), '--json'])).stdout);
    assert.equal(made.referrers.count, 3);
    const carried = (await bundleManifest(at('liar.bpk'))).blobs.map((b) => b.digest);
    assert.ok(!carried.includes(other.digest), 'the wrongly listed SBOM stays');
    assert.ok(!carried.includes(otherSig.digest), 'and so does its signature');
  });

  for (const [what, damage, code, message] of [
    ['missing', (f: string) => rm(f), 6, /referrer application\/spdx\+json sha256:[0-9a-f]{64} of sha256:.*missing/],
    ['corrupt', async (f: string) => writeFile(f, Buffer.alloc((await stat(f)).size, 0x41)), 4, /referrer application\/spdx\+json sha256:[0-9a-f]{64} of sha256:/],
  ] as const) {
    it(`a referrer with a ${what} blob is named in one line and no bundle is written`, async () => {
      const dir = at(`broken-${what}`);
      await copyDir(at('vendor'), dir);
      const sbomLayer = JSON.parse((await vendor.blob(sbom1.digest)).toString()).layers[0].digest as string;
      await damage(join(dir, 'blobs', 'sha256', sbomLayer.slice(7)));
      const r = await bp(at('home-v'), ['bundle', '--to', `app:1=oci:${dir}:1`, '-o', at(`broken-${what}.bpk`)]);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
      oneLine(r.stderr);
      await assert.rejects(stat(at(`broken-${what}.bpk`)), /ENOENT/);
      // copy refuses it too, before the image is written
      const c = await bp(at('home-v'), ['copy', `oci:${dir}:1`, `oci:${at(`copy-${what}`)}:1`]);
      assert.equal(c.code, code, c.stderr);
      oneLine(c.stderr);
      assert.deepEqual(await readdir(at(`copy-${what}`)).catch(() => []), [], 'nothing written');
    });
  }

  it('blockify copies the source referrers into the store; a block-form image finds them through io.blockport.source.manifest', async () => {
    const home = at('home-b');
    const r = JSON.parse((await bpOk(home, ['blockify', `oci:${at('vendor')}:1`, 'app:1', '--json'])).stdout);
    assert.equal(r.referrers.referrers, 3);
    const store = new Layout(home);
    assert.ok(await store.tagged(`app:${sigTag(d1.digest)}`), 'the signature is tagged beside the image');

    // the block-form image with the vendor digest recorded, as blockify records it for vendor images
    const held = await new Store(home).openImage('app:1');
    const src = referrerSource(held)!;
    const plain = standsFor(held);
    const recorded = held.manifest.annotations?.[SOURCE_MANIFEST] === d1.digest;
    assert.equal((await findReferrers(src, plain)).length, recorded ? 3 : 0, 'referrers are found for the digests the image stands for, no others');

    const annotated = Buffer.from(JSON.stringify({ ...held.manifest, annotations: { ...held.manifest.annotations, [SOURCE_MANIFEST]: d1.digest } }));
    const blockForm = await store.put(annotated);
    const transport = JSON.parse((await store.blob(held.top.digest)).toString());
    transport.config = { ...transport.config, ...blockForm };
    const top = await store.put(Buffer.from(JSON.stringify(transport)));
    await store.add({ ...held.top, ...top, annotations: { [REF_NAME]: 'app:1b' } });
    const marked = await new Store(home).openImage('app:1b');
    assert.ok(standsFor(marked).includes(d1.digest as never));
    assert.equal((await findReferrers(referrerSource(marked)!, standsFor(marked))).length, 3);
    await held.close();
    await marked.close();

    const bundled = JSON.parse((await bpOk(home, ['bundle', '--to', 'app:1b', '-o', at('blocks.bpk'), '--json'])).stdout);
    assert.equal(bundled.referrers.count, 3, 'a bundle of the block-form image carries the vendor digest referrers');

    // push and pull carry them with the block-form image
    const pushed = JSON.parse((await bpOk(home, ['push', 'app:1b', `docker://${reg.host}/blocks:1`, '--json'], env)).stdout);
    assert.equal(pushed.referrers.referrers, 3);
    assert.equal(await verify({ ...registryPlace(reg.host, 'blocks'), digestOf: async () => d1.digest }, '1', keys.publicKey), 'registry.example.com/app:1');
    const pulled = JSON.parse((await bpOk(at('home-p'), ['pull', `docker://${reg.host}/blocks:1`, 'team/app:1', '--json'], env)).stdout);
    assert.equal(pulled.referrers.referrers, 3);
    assert.ok(await new Layout(at('home-p')).tagged(`team/app:${sigTag(d1.digest)}`));
    assert.ok(await new Layout(at('home-p')).tagged(`team/app:${sigTag(sbom1.digest)}`));
  });

  it('materialize writes the referrers of the manifest it wrote, and says which it left when the digest changed', async () => {
    const home = at('home-b');
    const r = await bpOk(home, ['materialize', 'app:1b', `oci:${at('mat')}:1`, '--json']);
    const res = JSON.parse(r.stdout);
    const mat = new Layout(at('mat'));
    // the vendor's manifest is written back byte for byte, so its signature and SBOM apply to it
    assert.equal((await mat.tagged('1'))!.digest, d1.digest);
    assert.equal(res.referrers.written.referrers, 3);
    assert.equal(await verify(layoutPlace(mat), '1', keys.publicKey), 'registry.example.com/app:1');
    // re-encoded layers give another manifest digest: the referrers are left, and said to be
    const changed = JSON.parse((await bpOk(home, ['materialize', 'app:1b', `oci:${at('mat2')}:1`, '--compress', 'none', '--json'])).stdout);
    const mat2 = new Layout(at('mat2'));
    assert.notEqual((await mat2.tagged('1'))!.digest, d1.digest);
    assert.equal(changed.referrers.left.referrers, 3);
    assert.deepEqual(changed.referrers.left.subjects.sort(), [d1.digest, sbom1.digest].sort());
    assert.equal(await mat2.tagged(sigTag(d1.digest)), undefined, 'no signature of another digest beside it');
    const text = await bpOk(home, ['materialize', 'app:1b', `oci:${at('mat3')}:1`, '--compress', 'none']);
    assert.match(text.stdout, /referrers: 3 left behind: they sign sha256:/);
    const archive = await bpOk(home, ['materialize', 'app:1b', `docker-archive:${at('mat.tar')}:app:1`]);
    assert.match(archive.stdout, /referrers: 3 left behind: .*docker-archive: outputs keep no signatures/);
  });
});
