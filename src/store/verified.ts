import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../cas/atomic.js';
import { digestHex, isDigest, type Digest } from '../digest/digest.js';
import { fromSystemError } from '../errors.js';

/**
 * The store's record of which block-form layers were seen to splice into their diff_id
 * (docs/spec.md section 11): `verified/sha256/<layer hex>` holds the diff_id.
 *
 * A layer is recorded once the bytes it splices into were hashed and matched: when apply
 * receives it, or the first time materialize splices it. The layer and its blocks are
 * content-addressed and were verified when they entered the store, so splicing a recorded layer
 * again gives the same bytes, and materialize copies it without hashing: a second sha256 of
 * every byte was half of materialize's CPU time. `blockport fsck` finds blobs that rot later,
 * `materialize --verify` hashes anyway, and gc drops the records of layers it removes.
 */
export class VerifiedLayers {
  readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'verified', 'sha256');
  }

  private file(layer: Digest): string {
    return join(this.dir, digestHex(layer));
  }

  /** True when `layer` was recorded as splicing into `diffId`. */
  async has(layer: Digest, diffId: Digest): Promise<boolean> {
    const text = await fsp.readFile(this.file(layer), 'utf8').catch(() => '');
    return text.trim() === diffId;
  }

  async record(layer: Digest, diffId: Digest): Promise<void> {
    try {
      await fsp.mkdir(this.dir, { recursive: true });
      await writeFileAtomic(this.file(layer), `${diffId}\n`);
    } catch (err) {
      throw fromSystemError(err, this.file(layer));
    }
  }

  async forget(layer: Digest): Promise<void> {
    await fsp.rm(this.file(layer), { force: true });
  }

  /** The layers recorded. */
  async list(): Promise<Digest[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    return names.map((n) => `sha256:${n}`).filter(isDigest);
  }
}
