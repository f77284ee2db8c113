import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fsyncDir, streamToFileAtomic } from '../cas/atomic.js';
import { verifySplices, type SpliceCheck } from '../blocks/verify-splices.js';
import { StagedImageReader } from '../bundle/apply.js';
import { reachable } from '../oci/graph.js';
import { digestHex, type Digest } from '../digest/digest.js';
import { HashingStream, VerifyingStream } from '../digest/verify.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { forEachBounded, isManifestLike, standardTally, type TransferStats } from '../oci/copy-image.js';
import type { ImageReader } from '../oci/image.js';
import { OciLayout } from '../oci/layout.js';
import type { Descriptor } from '../oci/types.js';
import { resolveImage } from '../oci/resolve.js';
import { Store } from '../store/store.js';
import { VerifiedLayers } from '../store/verified.js';

export interface PullOptions {
  /** Blob downloads at once (default 4). */
  concurrency?: number;
  onProgress?: (p: { bytes: number; total: number }) => void;
}

export interface PullResult {
  top: Descriptor;
  /** The tag's previous digest in the store, if it had one. */
  previous?: Digest;
  stats: TransferStats & { resumed: { blobs: number; bytes: number } };
  splices: SpliceCheck;
}

/** Where a pull of `top` stages its blobs: inside the store, so moving them into blobs/ is a rename. */
export function pullStaging(home: string, top: Digest): string {
  return join(home, 'staging', `pull-${digestHex(top)}`);
}

async function sizeOf(p: string): Promise<number | undefined> {
  return fsp.stat(p).then((s) => (s.isFile() ? s.size : undefined), () => undefined);
}

/** Refuses an image that is not in block form: pull and push move block-form images only. */
export function requireBlockForm(src: ImageReader, verb: string): void {
  if (src.manifest.blocks) return;
  throw new BlockportError('EUNSUPPORTED', `${src.ref} is not a block-form image (no blocks in its manifest): ${verb} moves block-form images only; use 'blockport copy' to copy it as it is, or blockify it first`, { subject: src.ref });
}

/**
 * Pulls the block-form image `src` into the store at `home` as `tag`, like apply: under the store
 * lock, every blob the store lacks is fetched (`concurrency` at once) into a staging folder and
 * renamed there by its digest only once verified; then the block-form layers are checked to
 * splice into their diff_ids, the blobs move into blobs/, and the tag comes last. A killed pull
 * leaves verified staged blobs, which the next pull of the same image keeps; on an error the
 * staging folder goes and the store is unchanged.
 */
export async function pullImage(src: ImageReader, home: string, tag: string, o: PullOptions = {}): Promise<PullResult> {
  requireBlockForm(src, 'pull');
  const lock = await new Store(home).lock();
  const top = src.top;
  const staging = pullStaging(home, top.digest);
  const layout = new OciLayout(home);
  const stats: PullResult['stats'] = { total: { blobs: 0, bytes: 0 }, moved: { blobs: 0, bytes: 0 }, present: { blobs: 0, bytes: 0 }, standard: { blobs: 0, bytes: 0 }, resumed: { blobs: 0, bytes: 0 } };
  try {
    const all = await reachable(top, (d) => src.readBlob(d), src.ref);
    stats.total = { blobs: all.length, bytes: all.reduce((n, d) => n + d.size, 0) };
    await fsp.mkdir(staging, { recursive: true });
    const had = new Set<Digest>();
    const staged = new Set<Digest>();
    let done = 0;
    const tick = (n: number) => o.onProgress?.({ bytes: (done += n), total: stats.total.bytes });
    await forEachBounded(all, o.concurrency ?? 4, async (d) => {
      const file = join(staging, digestHex(d.digest));
      if ((await layout.blobs.size(d.digest)) === d.size) {
        had.add(d.digest);
        stats.present.blobs++;
        stats.present.bytes += d.size;
        return tick(d.size);
      }
      staged.add(d.digest);
      if ((await sizeOf(file)) === d.size) {
        // named by its digest only after verification, by this pull or a killed one
        stats.resumed.blobs++;
        stats.resumed.bytes += d.size;
        return tick(d.size);
      }
      const source = isManifestLike(d) ? Readable.from([await src.readBlob(d)]) : await src.openBlob(d);
      const count = new HashingStream((n) => tick(n), false);
      await streamToFileAtomic(file, source, [new VerifyingStream(d.digest, d.size, `${src.ref}: blob ${d.digest}`), count]);
      stats.moved.blobs++;
      stats.moved.bytes += d.size;
    });
    await fsyncDir(staging);
    stats.standard = standardTally(src, had);
    // nothing enters blobs/ before every block-form layer is known to give its diff_id
    const verified = new VerifiedLayers(home);
    const resolved = await resolveImage(top, (d) => src.readBlob(d), src.ref);
    const splices = await verifySplices(new StagedImageReader(src.ref, layout, resolved, staging, staged), verified);
    await fsp.mkdir(layout.blobs.dir, { recursive: true });
    for (const d of staged) {
      const file = join(staging, digestHex(d));
      if ((await layout.blobs.size(d)) !== undefined) await fsp.rm(file, { force: true });
      else await fsp.rename(file, layout.blobs.path(d));
    }
    await fsyncDir(layout.blobs.dir);
    for (const x of splices.matched) await verified.record(x.layer, x.diffId);
    await layout.init();
    const previous = (await layout.find(tag).catch(() => undefined))?.digest;
    await layout.tag(top, tag);
    await fsp.rm(staging, { recursive: true, force: true });
    await fsp.rmdir(join(home, 'staging')).catch(() => {}); // only when empty
    return { top, previous, stats, splices };
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true }).catch(() => {});
    await fsp.rmdir(join(home, 'staging')).catch(() => {});
    throw fromSystemError(err, home);
  } finally {
    await lock.release();
  }
}
