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
export async function* keptPlan(records: LayerRecords, desc: Descriptor, spot: FileSpot, access: BlockAccess, recorded: boolean): AsyncGenerator<Piece> {
  const size = annotatedSize(desc);
  if (!isBlockLayer(desc.mediaType) || size === undefined) {
    yield* layerPlan(spot, desc, access);
    return;
  }
  const kept = recorded ? await records.plan(desc.digest, size) : undefined;
  if (kept) {
    yield* kept;
    return;
  }
  const sourceOf = (path: string) => (path === spot.path ? { digest: desc.digest, offset: spot.offset } : access.blockAt(path));
  yield* records.keepPlan(desc.digest, layerPlan(spot, desc, access), sourceOf, recorded);
}
