import type { Digest } from '../digest/digest.js';
import { openUncompressed } from '../oci/compression.js';
import type { ImageReader } from '../oci/image.js';
import type { Descriptor } from '../oci/types.js';
import { findRecipe, type RecipeSearch } from './find-recipe.js';

/**
 * Searches the compressor of a compressed layer blob of `src` (docs/spec.md section 17.2), reading
 * the blob once per candidate. Undefined for an uncompressed blob: its digest is its diff_id, so
 * the spliced tar is the blob itself.
 */
export async function layerRecipe(src: ImageReader, desc: Descriptor, diffId: Digest, uncompressedSize: number, signal?: AbortSignal): Promise<RecipeSearch | undefined> {
  if (desc.digest === diffId) return undefined;
  return findRecipe(
    {
      openCompressed: () => src.openBlob(desc),
      openUncompressed: async () => openUncompressed(await src.openBlob(desc), `layer ${desc.digest}`),
      uncompressedSize,
      what: `layer ${desc.digest}`,
    },
    { signal },
  );
}
