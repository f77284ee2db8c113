import { CopyThreads } from '../cas/copy-plan.js';
import type { Digest } from '../digest/digest.js';
import { hasherFor } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import type { ImageReader } from '../oci/image.js';
import { Annotation, isBlockLayer } from '../oci/media-types.js';
import type { VerifiedLayers } from '../store/verified.js';
import { BlockAccess } from './block-access.js';
import { canPlan, explainMismatch, layerPlan, standardLayer } from './standard-layer.js';

/**
 * Layers hashed at once (one copy thread each). One: apply runs this after receiving a bundle, and
 * a second thread raised its peak RSS from 132-137 MB to 135-148 MB (node v1, full bundle) for no
 * measurable gain in time there.
 */
const AT_ONCE = 1;

export interface SpliceCheck {
  /** Block-form layers hashed and recorded now (those recorded before are skipped). */
  layers: number;
  /** Bytes of standard layer hashed. */
  bytes: number;
  /** The layers that matched, with their diff_ids. */
  matched: { layer: Digest; diffId: Digest }[];
}

/**
 * Checks that every block-form layer of `src` splices into the standard layer its diff_id names,
 * and records each one that does (see VerifiedLayers), unless `record` is false (the caller
 * records `matched` once everything else succeeded). Layers in `checked` are skipped too. The spliced bytes are only hashed, on copy
 * threads, one layer at a time; nothing is written. A layer that does not match fails with
 * EDIGEST naming the layer blob or block at fault, or the layer when its blobs are intact (an
 * image whose config and layers disagree).
 */
export async function verifySplices(
  src: ImageReader,
  verified: VerifiedLayers,
  opts: { onBytes?: (n: number) => void; record?: boolean; checked?: ReadonlySet<Digest> } = {},
): Promise<SpliceCheck> {
  const { onBytes, record = true, checked } = opts;
  const diffIds = src.config.rootfs.diff_ids;
  const todo: number[] = [];
  for (const [i, desc] of src.manifest.layers.entries()) {
    if (!isBlockLayer(desc.mediaType) || checked?.has(desc.digest)) continue;
    if (!(await verified.has(desc.digest, diffIds[i]))) todo.push(i);
  }
  if (todo.length === 0) return { layers: 0, bytes: 0, matched: [] };
  const access = await BlockAccess.for(src);
  const threads = CopyThreads.start(Math.min(AT_ONCE, todo.length));
  const result: SpliceCheck = { layers: 0, bytes: 0, matched: [] };
  let failure: { err: unknown } | undefined;
  try {
    let next = 0;
    const worker = async () => {
      while (next < todo.length && !failure) {
        const i = todo[next++];
        const desc = src.manifest.layers[i];
        try {
          const got = canPlan(src, desc) ? await threads.copy('', 0, layerPlan(src, desc, access), { onBytes }) : await hashLayer(standardLayer(src, desc, access), onBytes);
          const promised = desc.annotations?.[Annotation.layerSize];
          if (got.digest !== diffIds[i] || (promised !== undefined && Number(promised) !== got.size)) {
            throw new BlockportError('EDIGEST', `layer ${i} (${desc.digest}) splices into ${got.digest} (${got.size} bytes), not its diff_id ${diffIds[i]}`, { subject: desc.digest });
          }
          if (record) await verified.record(desc.digest, diffIds[i]);
          result.matched.push({ layer: desc.digest, diffId: diffIds[i] });
          result.layers++;
          result.bytes += got.size;
        } catch (err) {
          failure ??= { err: await explainMismatch(err, src, access, i).catch((e: unknown) => e) };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(AT_ONCE, todo.length) }, worker));
    if (failure) throw failure.err;
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
