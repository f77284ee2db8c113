import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { reachable } from '../oci/graph.js';
import { tempFileOwner } from '../cas/atomic.js';
import { acquireLock, alive } from '../cas/lock.js';
import type { Digest } from '../digest/digest.js';
import type { OciLayout } from '../oci/layout.js';
import { VerifiedLayers } from './verified.js';

export interface GcResult {
  removed: Array<{ digest: Digest; size: number }>;
  removedBytes: number;
  /** Unreferenced blobs younger than the grace period: a writer may be about to tag them. */
  kept: number;
  tempFiles: string[];
  dryRun: boolean;
}


/**
 * Deletes the store's blobs that no tag reaches (index -> manifests -> config, layers, blocks) and
 * temp files left by dead writers, under the store lock (docs/spec.md section 11). Blobs modified
 * within `graceMs` stay: blockify and apply write blobs before they tag them.
 */
export async function gcStore(layout: OciLayout, opts: { graceMs?: number; dryRun?: boolean; now?: number } = {}): Promise<GcResult> {
  const grace = opts.graceMs ?? 3600_000;
  const now = opts.now ?? Date.now();
  const lock = await acquireLock(join(layout.root, '.lock'), layout.root);
  try {
    const live = new Set<Digest>();
    for (const top of (await layout.readIndex()).manifests) {
      for (const d of await reachable(top, (x) => layout.readBlob(x), layout.root)) live.add(d.digest);
    }
    const result: GcResult = { removed: [], removedBytes: 0, kept: 0, tempFiles: [], dryRun: Boolean(opts.dryRun) };
    for await (const digest of layout.blobs.list()) {
      if (live.has(digest)) continue;
      const st = await fsp.stat(layout.blobs.path(digest)).catch(() => undefined);
      if (!st) continue;
      if (now - st.mtimeMs < grace) {
        result.kept++;
        continue;
      }
      result.removed.push({ digest, size: st.size });
      result.removedBytes += st.size;
      if (!opts.dryRun) await layout.blobs.delete(digest);
    }
    // a layer no tag reaches has no use for its record (and a layer received again is checked again)
    const verified = new VerifiedLayers(layout.root);
    for (const layer of await verified.list()) if (!live.has(layer) && !opts.dryRun) await verified.forget(layer);
    for (const dir of [layout.blobs.dir, verified.dir, layout.root]) {
      for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
        const owner = tempFileOwner(name);
        if (owner === undefined || alive(owner)) continue;
        result.tempFiles.push(name);
        if (!opts.dryRun) await fsp.rm(join(dir, name), { force: true });
      }
    }
    return result;
  } finally {
    await lock.release();
  }
}
