import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BlockportError } from '../errors.js';
import { keygen, loadPrivateKey, loadPublicKey, signManifest, trustedKeys, verifyManifest } from './sign.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-sign-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const code = (c: string) => (err: unknown) => err instanceof BlockportError && err.code === c;

test('keygen writes a private PEM (0600) and a public PEM, and never overwrites them', async () => {
  const k = await keygen(join(dir, 'vendor'));
  assert.match(await readFile(k.privateKey, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  assert.match(await readFile(k.publicKey, 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
  assert.equal((await stat(k.privateKey)).mode & 0o777, 0o600);
  assert.equal((await loadPublicKey(k.publicKey)).keyId, k.keyId);
  await assert.rejects(keygen(join(dir, 'vendor')), code('EUSAGE'));
});

test('a signature verifies with its key and fails on any change or another key', async () => {
  const a = await keygen(join(dir, 'a'));
  const b = await keygen(join(dir, 'b'));
  const bytes = Buffer.from('{"version":1}');
  const sig = signManifest(bytes, await loadPrivateKey(a.privateKey));
  assert.equal(sig.keyId, a.keyId);
  const keyA = await loadPublicKey(a.publicKey);
  const keyB = await loadPublicKey(b.publicKey);
  assert.equal(verifyManifest(bytes, sig, [keyB, keyA], 'x').keyId, a.keyId);
  assert.throws(() => verifyManifest(Buffer.from('{"version":2}'), sig, [keyA], 'x'), code('ESIGNATURE'));
  assert.throws(() => verifyManifest(bytes, sig, [keyB], 'x'), /untrusted key/);
  assert.throws(() => verifyManifest(bytes, undefined, [keyA], 'x'), /not signed/);
  const flipped = Buffer.from(sig.signature, 'base64');
  flipped[5] ^= 1;
  assert.throws(() => verifyManifest(bytes, { ...sig, signature: flipped.toString('base64') }, [keyA], 'x'), /does not verify/);
});

test('trusted keys come from the option, else from HOME/trust/*.pub', async () => {
  const home = join(dir, 'home');
  assert.deepEqual(await trustedKeys(undefined, home), []);
  await mkdir(join(home, 'trust'), { recursive: true });
  const k = await keygen(join(home, 'trust', 'vendor'));
  await rm(k.privateKey);
  await writeFile(join(home, 'trust', 'README'), 'not a key');
  const keys = await trustedKeys(undefined, home);
  assert.deepEqual(keys.map((x) => x.keyId), [k.keyId]);
  await assert.rejects(trustedKeys([join(home, 'trust', 'README')], home), code('ESIGNATURE'));
});
