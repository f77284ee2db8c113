import type { Digest } from '../digest/digest.js';
import type { ImageReader } from '../oci/image.js';
import type { Descriptor } from '../oci/types.js';
import { ownerSource } from './make-delta.js';
import type { Have } from './plan.js';
import type { RecipeBases } from './recipe-encode.js';
import { isRecipeKind } from './recipe-index.js';

/** The layers and blocks of an image that recipes can copy from (plain tars and file blocks). */
function recipeKinds(src: ImageReader): Descriptor[] {
  return [...src.manifest.layers, ...(src.manifest.blocks ?? [])].filter((d) => isRecipeKind(d.mediaType));
}

/**
 * What recipes may copy from: the plain tars and file blocks of the `held` images that the
 * receiver holds (each once), read from those images. Undefined without held images.
 */
export async function prepareRecipes(held: ImageReader[], have: Have): Promise<RecipeBases | undefined> {
  if (held.length === 0) return undefined;
  const lists = held.map(recipeKinds).map((l) => l.filter((d) => have.blobs.has(d.digest)));
  const seen = new Set<Digest>();
  const blobs = lists.flat().filter((d) => !seen.has(d.digest) && Boolean(seen.add(d.digest)));
  return { blobs, source: await ownerSource(lists, held) };
}
