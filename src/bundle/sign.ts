import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { sha256, type Digest } from '../digest/digest.js';
import { BlockportError, fromSystemError } from '../errors.js';
import type { BundleSignature } from './format.js';

/** A public key the receiver trusts, with where it came from (for messages). */
export interface TrustedKey {
  path: string;
  key: KeyObject;
  keyId: Digest;
}

/** sha256 of the public key's SPKI DER encoding: a stable, printable key identity. */
export function keyIdOf(publicKey: KeyObject): Digest {
  return sha256(publicKey.export({ type: 'spki', format: 'der' }));
}

/** Generates an Ed25519 key pair: NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (SPKI PEM). Never overwrites. */
export async function keygen(name: string): Promise<{ privateKey: string; publicKey: string; keyId: Digest }> {
  const privPath = `${name}.key`;
  const pubPath = `${name}.pub`;
  for (const p of [privPath, pubPath]) {
    if (await fsp.stat(p).then(() => true, () => false)) throw new BlockportError('EUSAGE', `${p} already exists; refusing to overwrite a key`, { subject: p });
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  try {
    await fsp.writeFile(privPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    await fsp.writeFile(pubPath, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
  } catch (err) {
    throw fromSystemError(err, name);
  }
  return { privateKey: privPath, publicKey: pubPath, keyId: keyIdOf(publicKey) };
}

async function readKeyFile(path: string): Promise<Buffer> {
  try {
    return await fsp.readFile(path);
  } catch (err) {
    throw fromSystemError(err, path);
  }
}

function ed25519(key: KeyObject, path: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new BlockportError('ESIGNATURE', `${path}: ${key.asymmetricKeyType} key; bundles are signed with Ed25519 (make one with 'blockport keygen')`, { subject: path });
  }
  return key;
}

/** Loads a PEM private key written by `keygen`. */
export async function loadPrivateKey(path: string): Promise<KeyObject> {
  const pem = await readKeyFile(path);
  try {
    return ed25519(createPrivateKey(pem), path);
  } catch (err) {
    if (err instanceof BlockportError) throw err;
    throw new BlockportError('ESIGNATURE', `${path}: not a PEM private key`, { subject: path, cause: err });
  }
}

/**
 * True when `pem` holds a private key. Node derives the public key from a private one without a
 * word, so a vendor's secret key copied where the public key belongs would verify; a receiver
 * must never hold it (whoever has it can sign bundles).
 */
function isPrivateKey(pem: Buffer): boolean {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem.toString('latin1'))) return true;
  try {
    createPrivateKey(pem);
    return true;
  } catch {
    return false;
  }
}

/** Loads a PEM public key (SPKI) to trust; refuses a private key. */
export async function loadPublicKey(path: string): Promise<TrustedKey> {
  const pem = await readKeyFile(path);
  if (isPrivateKey(pem)) {
    throw new BlockportError('ESIGNATURE', `${path}: a private (secret) key where a public key belongs; trust the .pub file that 'blockport keygen' wrote beside it, and keep the .key with the signer only`, { subject: path });
  }
  let key: KeyObject;
  try {
    key = ed25519(createPublicKey(pem), path);
  } catch (err) {
    if (err instanceof BlockportError) throw err;
    throw new BlockportError('ESIGNATURE', `${path}: not a PEM public key`, { subject: path, cause: err });
  }
  return { path, key, keyId: keyIdOf(key) };
}

/** The keys to check bundles against: those given, else `HOME/trust/*.pub`; none means unchecked. */
export async function trustedKeys(given: string[] | undefined, home: string): Promise<TrustedKey[]> {
  if (given && given.length) return Promise.all(given.map(loadPublicKey));
  const dir = join(home, 'trust');
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return Promise.all(names.filter((n) => n.endsWith('.pub')).sort().map((n) => loadPublicKey(join(dir, n))));
}

/** Signs the exact bytes of a bundle manifest. */
export function signManifest(bytes: Buffer, key: KeyObject): BundleSignature {
  return { algorithm: 'ed25519', keyId: keyIdOf(createPublicKey(key)), signature: sign(null, bytes, key).toString('base64') };
}

/** Returns the trusted key that made `sig` over `bytes`; ESIGNATURE when unsigned or no key verifies it. */
export function verifyManifest(bytes: Buffer, sig: BundleSignature | undefined, keys: TrustedKey[], what: string): TrustedKey {
  if (!sig) throw new BlockportError('ESIGNATURE', `${what} is not signed, and trusted keys are configured (${keys.map((k) => k.path).join(', ')}); refusing it`);
  const raw = Buffer.from(sig.signature, 'base64');
  // try the named key first, then the rest: a renamed or re-exported key file still verifies
  const ordered = [...keys.filter((k) => k.keyId === sig.keyId), ...keys.filter((k) => k.keyId !== sig.keyId)];
  for (const k of ordered) if (raw.length === 64 && verify(null, bytes, k.key, raw)) return k;
  const known = keys.some((k) => k.keyId === sig.keyId);
  throw new BlockportError(
    'ESIGNATURE',
    known ? `${what}: signature does not verify (the bundle manifest was altered or signed by another key)` : `${what}: signed by an untrusted key ${sig.keyId}`,
  );
}
