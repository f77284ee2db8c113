import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { FsBlobStore } from '../cas/blob-store.js';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { jsonBytes } from '../oci/json.js';
import type { Descriptor } from '../oci/types.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';
import { BUNDLE_MEDIA_TYPE, blobMember, type BundleBlob } from './format.js';
import { openBundle } from './read.js';
import { keyIdOf } from './sign.js';
import { writeBundle } from './write.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-write-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const text = Buffer.from('{"key":"value","list":[1,2,3]}\n'.repeat(800));
const noise = randomBytes(50_000);
const gz = randomBytes(3000);
const blobs = new Map([text, noise, gz].map((b) => [sha256(b), b]));
const send: Descriptor[] = [
  { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(text), size: text.length },
  { mediaType: 'application/vnd.blockport.block.file.v1', digest: sha256(noise), size: noise.length },
  { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(gz), size: gz.length },
];
const target = { name: 'app:2', descriptor: send[0] };
const open = { open: async (d: Descriptor) => Readable.from([blobs.get(d.digest)!]) };

async function readAll(files: string[]) {
  const b = await openBundle(files);
  const out: { blob: BundleBlob; bytes: Buffer }[] = [];
  for await (const e of b.blobs()) {
    const parts: Buffer[] = [];
    for await (const c of e.data()) parts.push(c);
    out.push({ blob: e.blob, bytes: Buffer.concat(parts) });
  }
  return { bundle: b, out };
}

test('round trip: zstd only where it shrinks, members in manifest order, signature over bundle.json', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const file = join(dir, 'a.bpk');
  const r = await writeBundle({ targets: [target], send, prerequisites: [] }, open, file, { signKey: privateKey });
  assert.deepEqual(r.manifest.blobs.map((b) => b.encoding), ['zstd', 'none', 'none']);
  assert.ok(r.manifest.blobs[0].storedSize < text.length / 5);
  assert.equal(r.signedBy, keyIdOf(publicKey));
  const { bundle, out } = await readAll([file]);
  assert.equal(bundle.digest, r.digest);
  assert.equal(bundle.signature?.keyId, keyIdOf(publicKey));
  assert.deepEqual(out.map((x) => x.bytes), [text, noise, gz]);
  assert.equal((await readFile(file)).length, r.bytes);
});

test('blobs kept as files are compressed in one zstd run and read back the same', async () => {
  const store = new FsBlobStore(join(dir, 'store'));
  for (const b of blobs.values()) await store.put(Readable.from([b]));
  const files = { open: (d: Descriptor) => store.open(d.digest, d.size), path: (d: Descriptor) => store.path(d.digest) };
  const file = join(dir, 'files.bpk');
  const r = await writeBundle({ targets: [target], send, prerequisites: [] }, files, file);
  assert.deepEqual(r.manifest.blobs.map((b) => b.encoding), ['zstd', 'none', 'none']);
  const { out } = await readAll([file]);
  assert.deepEqual(out.map((x) => x.bytes), [text, noise, gz]);
  // a corrupt blob file is caught while bundling, not by the receiver
  await writeFile(store.path(sha256(text)), Buffer.concat([text.subarray(1), Buffer.from('x')]));
  await assert.rejects(writeBundle({ targets: [target], send, prerequisites: [] }, files, join(dir, 'bad.bpk')), (e: unknown) => e instanceof BlockportError && e.code === 'EDIGEST');
});

test('same inputs give the same bytes (deterministic), --no-compress stores everything raw', async () => {
  const a = await writeBundle({ targets: [target], send, prerequisites: [] }, open, join(dir, 'b1.bpk'));
  const b = await writeBundle({ targets: [target], send, prerequisites: [] }, open, join(dir, 'b2.bpk'));
  assert.deepEqual(await readFile(join(dir, 'b1.bpk')), await readFile(join(dir, 'b2.bpk')));
  assert.equal(a.digest, b.digest);
  const raw = await writeBundle({ targets: [target], send, prerequisites: [] }, open, join(dir, 'raw.bpk'), { compress: false });
  assert.ok(raw.manifest.blobs.every((x) => x.encoding === 'none' && x.storedSize === x.size));
});

test('split volumes read back as one bundle', async () => {
  const file = join(dir, 'split.bpk');
  const r = await writeBundle({ targets: [target], send, prerequisites: [] }, open, file, { split: 10_000 });
  assert.ok(r.files.length >= 6);
  const { out } = await readAll([r.files[0]]);
  assert.deepEqual(out.map((x) => x.bytes), [text, noise, gz]);
});

const isCorrupt = (re: RegExp) => (err: unknown) => err instanceof BlockportError && err.code === 'ECORRUPT' && re.test(err.message);

test('truncation, a missing end marker, members out of order and extra members are ECORRUPT', async () => {
  const file = join(dir, 'c.bpk');
  await writeBundle({ targets: [target], send, prerequisites: [] }, open, file, { compress: false });
  const size = (await readFile(file)).length;
  await truncate(file, size - 1024);
  await assert.rejects(readAll([file]), isCorrupt(/no end-of-archive marker/));
  await truncate(file, size - 20_000);
  await assert.rejects(readAll([file]), isCorrupt(/truncated/));

  const manifest = { mediaType: BUNDLE_MEDIA_TYPE, version: 1, targets: [target], prerequisites: [], blobs: send.slice(0, 2).map((d) => ({ ...d, encoding: 'none', storedSize: d.size })) };
  const member = (name: string, data: Buffer) => [encodeHeader({ path: name, type: 'file', size: data.length, mode: 0o644 }), data, padding(data.length)];
  const m = jsonBytes(manifest);
  const swapped = Buffer.concat([...member('bundle.json', m), ...member(blobMember(manifest.blobs[1] as BundleBlob), noise), ...member(blobMember(manifest.blobs[0] as BundleBlob), text), END_OF_ARCHIVE]);
  await writeFile(file, swapped);
  await assert.rejects(readAll([file]), isCorrupt(/where bundle.json lists/));
  const extra = Buffer.concat([...member('bundle.json', m), ...member(blobMember(manifest.blobs[0] as BundleBlob), text), ...member(blobMember(manifest.blobs[1] as BundleBlob), noise), ...member('evil', gz), END_OF_ARCHIVE]);
  await writeFile(file, extra);
  await assert.rejects(readAll([file]), isCorrupt(/unexpected member "evil"/));
  await writeFile(file, Buffer.concat([...member('other.json', m), END_OF_ARCHIVE]));
  await assert.rejects(openBundle([file]), isCorrupt(/not a blockport bundle/));
});
