import { CopyThreads } from '../cas/copy-plan.js';
import type { Digest } from '../digest/digest.js';
import { hasherFor } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import type { ImageReader, LayerRecords } from '../oci/image.js';
import { Annotation, isBlockLayer } from '../oci/media-types.js';
import { BlockAccess } from './block-access.js';
import { keptPlan } from './splice-plan.js';
import { explainMismatch, planSpot, standardLayer } from './standard-layer.js';

export interface SpliceCheck {
  /** Block-form layers hashed now (those recorded before, or in `checked`, are skipped). */
  layers: number;
  /** Bytes of standard layer hashed. */
  bytes: number;
  /** The layers that matched, with their diff_ids: the caller records them once its work is done. */
  matched: { layer: Digest; diffId: Digest }[];
}

/**
 * Checks that every block-form layer of `src` splices into the standard layer its diff_id names,
 * skipping layers already recorded in `verified` and those in `checked`. The spliced bytes are
 * only hashed, one layer at a time on one copy thread (a second thread raised apply's peak RSS
 * from 132-137 MB to 135-148 MB on a full node bundle, for no gain in time); nothing is written.
 * A layer that does not match fails with EDIGEST naming the layer blob or block at fault, or the
 * layer when its blobs are intact (an image whose config and layers disagree).
 */
export async function verifySplices(
  src: ImageReader,
  verified: LayerRecords,
  opts: { onBytes?: (n: number) => void; checked?: ReadonlySet<Digest> } = {},
): Promise<SpliceCheck> {
  const diffIds = src.config.rootfs.diff_ids;
  const todo: number[] = [];
  for (const [i, desc] of src.manifest.layers.entries()) {
    if (!isBlockLayer(desc.mediaType) || opts.checked?.has(desc.digest)) continue;
    if (!(await verified.has(desc.digest, diffIds[i]))) todo.push(i);
  }
  const result: SpliceCheck = { layers: 0, bytes: 0, matched: [] };
  if (todo.length === 0) return result;
  const access = await BlockAccess.for(src);
  const threads = CopyThreads.start(1);
  try {
    for (const i of todo) {
      const desc = src.manifest.layers[i];
      try {
        const spot = await planSpot(src, desc);
        const got = spot ? await threads.copy('', 0, keptPlan(verified, desc, spot, access, false), { onBytes: opts.onBytes }) : await hashLayer(standardLayer(src, desc, access), opts.onBytes);
        const promised = desc.annotations?.[Annotation.layerSize];
        if (got.digest !== diffIds[i] || (promised !== undefined && Number(promised) !== got.size)) {
          throw new BlockportError('EDIGEST', `layer ${i + 1} (${desc.digest}) splices into ${got.digest} (${got.size} bytes), not its diff_id ${diffIds[i]}`, { subject: desc.digest });
        }
        result.matched.push({ layer: desc.digest, diffId: diffIds[i] });
        result.layers++;
        result.bytes += got.size;
      } catch (err) {
        await explainMismatch(err, src, access, i);
      }
    }
    return result;
  } finally {
    await threads.close();
    await access.close();
  }
}

async function hashLayer(bytes: AsyncIterable<Buffer>, onBytes?: (n: number) => void): Promise<{ digest: Digest; size: number }> {
  const h = hasherFor(0);
  for await (const chunk of bytes) {
    await h.update(chunk);
    onBytes?.(chunk.length);
  }
  return { digest: await h.digest(), size: h.size };
}
