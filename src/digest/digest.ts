import { createHash, type Hash } from 'node:crypto';
import { BlockportError } from '../errors.js';

/** A content digest, `sha256:` and 64 lowercase hex digits. Branded so plain strings need a check. */
export type Digest = string & { readonly __digest: unique symbol };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** Returns `s` as a Digest, or throws ECORRUPT naming where it came from. */
export function parseDigest(s: unknown, where = 'digest'): Digest {
  if (typeof s !== 'string' || !DIGEST_RE.test(s)) {
    throw new BlockportError('ECORRUPT', `${where}: invalid digest ${JSON.stringify(s)} (want sha256:<64 hex>)`);
  }
  return s as Digest;
}

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s);
}

/** The hex part of a digest: the file name under blobs/sha256/. */
export function digestHex(d: Digest): string {
  return d.slice(7);
}

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/** An incremental sha256 that also counts bytes. */
export class Hasher {
  private readonly hash: Hash = createHash('sha256');
  size = 0;

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }

  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}` as Digest;
  }
}
