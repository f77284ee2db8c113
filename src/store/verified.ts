import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { removeDeadTemps, tempPathFor, writeFileAtomic } from '../cas/atomic.js';
import type { Piece } from '../cas/copy-plan.js';
import { digestHex, isDigest, type Digest } from '../digest/digest.js';
import { fromSystemError } from '../errors.js';
import type { LayerRecords, SourceOf } from '../oci/image.js';
import { readSpliceMap, SpliceMapWriter } from './splice-map.js';

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
 * Beside a record, `<layer hex>.map` keeps the layer's copy plan (see splice-map.ts).
 */
export class VerifiedLayers implements LayerRecords {
  readonly dir: string;
  /** Plans gathered for layers not recorded yet, by layer. */
  private readonly pending = new Map<Digest, SpliceMapWriter>();

  constructor(private readonly root: string) {
    this.dir = join(root, 'verified', 'sha256');
  }

  private mapFile(layer: Digest): string {
    return `${this.file(layer)}.map`;
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
    const map = this.pending.get(layer);
    if (map?.complete) {
      this.pending.delete(layer);
      await this.keep(layer, map);
    }
  }

  async plan(layer: Digest, size: number): Promise<AsyncIterable<Piece> | undefined> {
    return readSpliceMap(this.mapFile(layer), size, (d) => join(this.root, 'blobs', 'sha256', digestHex(d)));
  }

  keepPlan(layer: Digest, pieces: AsyncIterable<Piece>, sourceOf: SourceOf, recorded: boolean): AsyncIterable<Piece> {
    const map = new SpliceMapWriter(tempPathFor(this.mapFile(layer)), sourceOf);
    const self = this;
    return (async function* () {
      let kept = false;
      try {
        await fsp.mkdir(self.dir, { recursive: true });
        // what a killed run left of this layer's map (several MB for a package-heavy layer)
        await removeDeadTemps(self.dir, basename(self.mapFile(layer)));
        yield* map.tee(pieces);
        if (!map.complete) return;
        if (recorded) await self.keep(layer, map);
        else {
          await self.pending.get(layer)?.discard();
          self.pending.set(layer, map);
        }
        kept = true;
      } finally {
        if (!kept) await map.discard();
      }
    })();
  }

  /** Names a complete map; a map is a cache, so failing to keep one is no failure (and needs no fsync: a torn one fails its checksum). */
  private async keep(layer: Digest, map: SpliceMapWriter): Promise<void> {
    await fsp.rename(map.tmp, this.mapFile(layer)).catch(() => map.discard());
  }

  async dropPending(): Promise<void> {
    for (const map of this.pending.values()) await map.discard();
    this.pending.clear();
  }

  async forget(layer: Digest): Promise<void> {
    await fsp.rm(this.file(layer), { force: true });
    await fsp.rm(this.mapFile(layer), { force: true });
  }

  /** The layers recorded. */
  async list(): Promise<Digest[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    return names.map((n) => `sha256:${n}`).filter(isDigest);
  }
}
