import type { Digest } from '../digest/digest.js';
import { resolveImage } from '../oci/resolve.js';
import type { Descriptor } from '../oci/types.js';
import { ownerSource } from './make-delta.js';
import type { Have } from './plan.js';
import type { RecipeBases } from './recipe-encode.js';
import { isRecipeKind } from './recipe-index.js';
import type { ImageSource } from './source.js';

/** The layers and blocks of an image that recipes can copy from (plain tars and file blocks). */
async function recipeKinds(src: ImageSource): Promise<Descriptor[]> {
  const img = await resolveImage(src.top, (d) => src.read(d), src.ref);
  return [...img.manifest.layers, ...(img.manifest.blocks ?? [])].filter((d) => isRecipeKind(d.mediaType));
}

/**
 * What recipes may copy from: the plain tars and file blocks of the `held` images that the
 * receiver holds (each once), read from those images. Undefined without held images.
 */
export async function prepareRecipes(held: ImageSource[], have: Have): Promise<RecipeBases | undefined> {
  if (held.length === 0) return undefined;
  const lists = (await Promise.all(held.map(recipeKinds))).map((l) => l.filter((d) => have.blobs.has(d.digest)));
  const seen = new Set<Digest>();
  const blobs = lists.flat().filter((d) => !seen.has(d.digest) && Boolean(seen.add(d.digest)));
  return { blobs, source: ownerSource(lists, held) };
}
