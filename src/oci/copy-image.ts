import { Readable } from 'node:stream';
import type { Digest } from '../digest/digest.js';
import { reachable } from './graph.js';
import { Annotation, isBlockLayer, isImageManifest, isIndex } from './media-types.js';
import type { ImageReader, ImageWriter } from './image.js';
import type { Descriptor } from './types.js';

/** Whether `d` is an index or manifest (PUT to a registry's manifests API, not uploaded as a blob). */
export function isManifestLike(d: Descriptor): boolean {
  return isIndex(d) || isImageManifest(d);
}

/** Blobs and bytes: what a transfer moved, found already there, or would move. */
export interface Tally {
  blobs: number;
  bytes: number;
}

export interface TransferStats {
  /** Every blob the image reaches (indexes and manifests included). */
  total: Tally;
  /** Sent or fetched in this run. */
  moved: Tally;
  /** The destination had them already. */
  present: Tally;
  /**
   * What a plain `skopeo copy` of the standard image would move to this destination: the config, the
   * manifest and each standard layer whose block-form (or unchanged) layer the destination lacks,
   * at its uncompressed size (`io.blockport.layer.size`; registries then gzip it).
   */
  standard: Tally;
}

export interface CopyOptions {
  /** Blobs transferred at once (default 4). */
  concurrency?: number;
  onProgress?: (p: { bytes: number; total: number }) => void;
}

/**
 * Runs `fn` over `items`, at most `limit` at once. The first error stops new items from starting;
 * it is thrown once the running ones have settled, so nothing is still writing when the caller
 * cleans up.
 */
export async function forEachBounded<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
}

/** The standard image's share of a transfer, given which blobs the destination had before. */
export function standardTally(src: ImageReader, had: ReadonlySet<Digest>): Tally {
  const out: Tally = { blobs: 2, bytes: src.manifest.config.size + src.manifestDescriptor.size };
  for (const l of src.manifest.layers) {
    if (had.has(l.digest)) continue;
    out.blobs++;
    out.bytes += isBlockLayer(l.mediaType) ? Number(l.annotations?.[Annotation.layerSize] ?? l.size) : l.size;
  }
  return out;
}

/**
 * Copies the image `src` names to `dst` as it is: every blob reachable from its top descriptor
 * (transport manifest, index, manifests, config, layers, blocks), each once, then commits the same
 * top descriptor, so the copy has the same digest. Blobs `dst` holds are skipped; the rest move
 * `concurrency` at a time. Works for any reader and writer (layouts, archives, registries, the store).
 */
export async function copyImage(src: ImageReader, dst: ImageWriter, o: CopyOptions = {}): Promise<{ top: Descriptor; stats: TransferStats }> {
  const top = src.top;
  const stats: TransferStats = { total: { blobs: 0, bytes: 0 }, moved: { blobs: 0, bytes: 0 }, present: { blobs: 0, bytes: 0 }, standard: { blobs: 0, bytes: 0 } };
  try {
    const all = await reachable(top, (d) => src.readBlob(d), src.ref);
    const had = new Set<Digest>();
    const total = all.reduce((n, d) => n + d.size, 0);
    let done = 0;
    const tick = (n: number) => o.onProgress?.({ bytes: (done += n), total });
    const blobs = all.filter((d) => !isManifestLike(d));
    await forEachBounded(blobs, o.concurrency ?? 4, async (d) => {
      if (await dst.hasBlob(d)) {
        had.add(d.digest);
        stats.present.blobs++;
        stats.present.bytes += d.size;
      } else {
        await dst.copyBlob(src, d);
        stats.moved.blobs++;
        stats.moved.bytes += d.size;
      }
      tick(d.size);
    });
    // manifests and indexes last, through putBlob: a registry writer PUTs them at commit, children first
    for (const d of all.filter(isManifestLike)) {
      await dst.putBlob(Readable.from([await src.readBlob(d)]), { digest: d.digest, size: d.size });
      stats.moved.blobs++;
      stats.moved.bytes += d.size;
      tick(d.size);
    }
    stats.total = { blobs: all.length, bytes: total };
    stats.standard = standardTally(src, had);
    await dst.commit(top);
    return { top, stats };
  } catch (err) {
    await dst.abort();
    throw err;
  }
}
