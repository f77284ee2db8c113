import type { Piece } from '../cas/copy-plan.js';
import type { FileSpot, LayerRecords } from '../oci/image.js';
import { annotatedSize, isBlockLayer } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import type { BlockAccess } from './block-access.js';
import { layerPlan } from './standard-layer.js';

/**
 * The copy plan of layer `desc` (lying at `spot`) for a writer. A block-form layer the source
 * records as verified (`recorded`) is copied from the plan the source kept for it (a splice map,
 * docs/spec.md 11.1: no tar, import entry or folder block is parsed again); otherwise it is
 * spliced (layerPlan) and its plan handed to `records` to keep, which they do once the layer is
 * recorded.
 */
export function keptPlan(records: LayerRecords, desc: Descriptor, spot: FileSpot, access: BlockAccess, recorded: boolean): AsyncIterable<Piece> {
  // no generator around the plan: a kept plan's many small pieces then cost one step each, not two
  return {
    [Symbol.asyncIterator]() {
      let it: AsyncIterator<Piece> | undefined;
      return {
        async next() {
          it ??= (await planOf(records, desc, spot, access, recorded))[Symbol.asyncIterator]();
          return it.next();
        },
        async return() {
          await it?.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
}

async function planOf(records: LayerRecords, desc: Descriptor, spot: FileSpot, access: BlockAccess, recorded: boolean): Promise<AsyncIterable<Piece>> {
  const size = annotatedSize(desc);
  if (!isBlockLayer(desc.mediaType) || size === undefined) return layerPlan(spot, desc, access);
  const kept = recorded ? await records.plan(desc.digest, size) : undefined;
  if (kept) return kept;
  const sourceOf = (path: string) => (path === spot.path ? { digest: desc.digest, offset: spot.offset } : access.blockAt(path));
  return records.keepPlan(desc.digest, layerPlan(spot, desc, access), sourceOf, recorded);
}
