import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { BUNDLE_MEDIA_TYPE, blobMember, parseBundleManifest, parseSignature } from './format.js';

const blob = { digest: sha256('a'), size: 1, mediaType: 'x', encoding: 'none', storedSize: 1 };
const good = { mediaType: BUNDLE_MEDIA_TYPE, version: 1, targets: [{ name: 'app:2', descriptor: { mediaType: 'm', digest: sha256('i'), size: 9 } }], prerequisites: [{ digest: sha256('p'), size: 4 }], blobs: [blob] };
const parse = (v: unknown) => parseBundleManifest(Buffer.from(JSON.stringify(v)));
const fails = (code: string, re: RegExp) => (err: unknown) => err instanceof BlockportError && err.code === code && re.test(err.message);

test('a valid manifest parses; unknown fields are dropped', () => {
  const m = parse({ ...good, extra: 1 });
  assert.deepEqual(m, good);
  assert.equal(blobMember({ digest: sha256('a'), encoding: 'zstd' }), `blobs/sha256/${sha256('a').slice(7)}.zst`);
});

test('bad manifests are refused with a reason', () => {
  assert.throws(() => parse({ ...good, version: 2 }), fails('EUNSUPPORTED', /version 2/));
  assert.throws(() => parse({ ...good, mediaType: 'x' }), fails('ECORRUPT', /not a blockport bundle/));
  assert.throws(() => parse({ ...good, blobs: [blob, blob] }), fails('ECORRUPT', /listed twice/));
  assert.throws(() => parse({ ...good, prerequisites: [{ digest: blob.digest, size: 1 }] }), fails('ECORRUPT', /listed twice/));
  assert.throws(() => parse({ ...good, blobs: [{ ...blob, encoding: 'xz' }] }), fails('ECORRUPT', /unknown encoding/));
  assert.throws(() => parse({ ...good, blobs: [{ ...blob, storedSize: 2 }] }), fails('ECORRUPT', /storedSize/));
  assert.throws(() => parse({ ...good, blobs: [{ ...blob, size: -1 }] }), fails('ECORRUPT', /invalid size/));
  assert.throws(() => parse({ ...good, blobs: [{ ...blob, digest: 'sha256:../../etc' }] }), fails('ECORRUPT', /invalid digest/));
  assert.throws(() => parse({ ...good, targets: [{ ...good.targets[0], name: '../x' }] }), fails('ECORRUPT', /invalid image name/));
  assert.throws(() => parseBundleManifest(Buffer.from('{')), fails('ECORRUPT', /invalid JSON/));
});

test('signatures must be ed25519 with a key id', () => {
  const s = { algorithm: 'ed25519', keyId: sha256('k'), signature: 'AAAA' };
  assert.deepEqual(parseSignature(Buffer.from(JSON.stringify(s))), s);
  assert.throws(() => parseSignature(Buffer.from(JSON.stringify({ ...s, algorithm: 'rsa' }))), fails('ESIGNATURE', /unsupported/));
  assert.throws(() => parseSignature(Buffer.from(JSON.stringify({ ...s, keyId: 'k' }))), fails('ESIGNATURE', /malformed/));
});

test('a recipe names its bases, each a prerequisite, none twice, never itself', () => {
  const base = good.prerequisites[0];
  const recipe = { ...blob, encoding: 'recipe', storedSize: 1, bases: [base] };
  assert.deepEqual(parse({ ...good, blobs: [recipe] }).blobs[0].bases, [base]);
  assert.equal(blobMember({ digest: sha256('a'), encoding: 'recipe' }), `blobs/sha256/${sha256('a').slice(7)}.recipe`);
  assert.throws(() => parse({ ...good, blobs: [{ ...recipe, bases: [] }] }), fails('ECORRUPT', /names no bases/));
  assert.throws(() => parse({ ...good, blobs: [{ ...recipe, bases: undefined }] }), fails('ECORRUPT', /names no bases/));
  assert.throws(() => parse({ ...good, blobs: [{ ...recipe, bases: [base, base] }] }), fails('ECORRUPT', /a base twice/));
  assert.throws(() => parse({ ...good, blobs: [{ ...recipe, bases: [{ digest: blob.digest, size: 1 }] }] }), fails('ECORRUPT', /its own base/));
  assert.throws(() => parse({ ...good, blobs: [{ ...recipe, bases: [{ digest: sha256('q'), size: 4 }] }] }), fails('ECORRUPT', /not among the prerequisites/));
  assert.throws(() => parse({ ...good, blobs: [{ ...recipe, bases: [{ ...base, size: 5 }] }] }), fails('ECORRUPT', /not among the prerequisites/));
  assert.throws(() => parse({ ...good, blobs: [{ ...recipe, bases: [{ digest: 'sha256:x', size: 4 }] }] }), fails('ECORRUPT', /invalid digest/));
});

test('a zip delta names its base like any delta: a prerequisite, never itself', () => {
  const base = good.prerequisites[0];
  const zip = { ...blob, encoding: 'zip-delta', storedSize: 1, base };
  assert.deepEqual(parse({ ...good, blobs: [zip] }).blobs[0].base, base);
  assert.equal(blobMember({ digest: sha256('a'), encoding: 'zip-delta' }), `blobs/sha256/${sha256('a').slice(7)}.zip-delta`);
  assert.throws(() => parse({ ...good, blobs: [{ ...zip, base: undefined }] }), fails('ECORRUPT', /names no base/));
  assert.throws(() => parse({ ...good, blobs: [{ ...zip, base: { digest: sha256('q'), size: 4 } }] }), fails('ECORRUPT', /not among the prerequisites/));
  assert.throws(() => parse({ ...good, blobs: [{ ...zip, base: { digest: blob.digest, size: 1 } }] }), fails('ECORRUPT', /its own base/));
});

test('a referrer names a target of the bundle, and a cosign tag only of its own subject', () => {
  const subject = sha256('i');
  const sig = { target: 'app:2', subject, descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('s'), size: 3 }, tag: `sha256-${subject.slice(7)}.sig` };
  const sbom = { target: 'app:2', subject, descriptor: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256('b'), size: 3, artifactType: 'application/spdx+json' } };
  assert.deepEqual(parse({ ...good, referrers: [sig, sbom] }).referrers, [sig, sbom]);
  assert.equal(parse(good).referrers, undefined);
  assert.throws(() => parse({ ...good, referrers: [{ ...sig, target: 'other:1' }] }), fails('ECORRUPT', /referrers\[0\]: names no target/));
  assert.throws(() => parse({ ...good, referrers: [{ ...sig, tag: `sha256-${sha256('x').slice(7)}.sig` }] }), fails('ECORRUPT', /is not a cosign tag of/));
  assert.throws(() => parse({ ...good, referrers: [{ ...sig, tag: '../latest' }] }), fails('ECORRUPT', /is not a cosign tag/));
  assert.throws(() => parse({ ...good, referrers: [{ ...sbom, subject: 'sha256:nope' }] }), fails('ECORRUPT', /invalid digest/));
  assert.throws(() => parse({ ...good, referrers: {} }), fails('ECORRUPT', /referrers must be an array/));
});
