import { pipeline, type Readable, type TransformCallback } from 'node:stream';
import { VerifyingStream } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import type { ImageReader } from '../oci/image.js';
import { Annotation, isBlockLayer } from '../oci/media-types.js';
import type { OriginalImage, OriginalLayerBlob } from '../oci/standard-image.js';
import type { Descriptor } from '../oci/types.js';
import { describeRecipe, parseRecipe, type Recipe } from './recipe.js';
import { recompressor } from './recompressor.js';
import { readSource, sourceManifest, wholeIndex, type SourceImage } from './source.js';

/**
 * How to write `src` back as its vendor's exact image: from the kept source (a block-form image,
 * docs/spec.md section 17), or `src` itself when it is a standard image. Undefined when a
 * block-form image kept no source.
 */
export async function originalImage(src: ImageReader): Promise<OriginalImage | undefined> {
  const source = src.manifest.blocks ? await readSource(src) : standardSource(src);
  if (!source) return undefined;
  const diffIds = src.config.rootfs.diff_ids;
  const layers = src.manifest.layers.map((have, i): OriginalLayerBlob => {
    const target = source.parsed.layers[i];
    if (!isBlockLayer(have.mediaType)) {
      return have.digest === target.digest ? { target, how: 'copy' } : { target, how: 'none', reason: `the image holds blob ${have.digest} for it, not the source's` };
    }
    if (target.digest === diffIds[i]) return { target, how: 'tar' };
    const text = have.annotations?.[Annotation.layerRecompress];
    if (text === undefined) return { target, how: 'none', reason: 'blockify found no compressor that re-creates its blob' };
    const recipe = parseRecipe(text, `${src.ref}: layers[${i}]`);
    return { target, how: 'recreate', recreate: (tar, size) => recreateLayer(tar, recipe, target, i, size) };
  });
  // one platform of several is written alone: the index is written by whoever writes them all
  return { manifest: source.manifest, index: src.manifest.blocks && src.index ? undefined : source.index, layers };
}

/** A standard image is its own source: every layer is copied, the manifest (and a one-image index) kept. */
function standardSource(src: ImageReader): SourceImage {
  return { manifest: sourceManifest(src), index: wholeIndex(src, [src.manifestDescriptor.digest]), parsed: src.manifest };
}

/** A recipe's failure, as opposed to a bad block or layer: its subject is the target digest, so writers fall back. */
export class RecipeMismatch extends BlockportError {
  constructor(target: Descriptor, message: string, cause: unknown) {
    super('EDIGEST', message, { cause, subject: target.digest });
  }
}

/** The digest check of a re-created blob, whose failures are RecipeMismatch. */
class RecipeCheck extends VerifyingStream {
  private readonly toMismatch: (e: Error) => Error;
  constructor(target: Descriptor, label: string, toMismatch: (e: Error) => Error) {
    super(target.digest, target.size, label);
    this.toMismatch = toMismatch;
  }
  override _transform(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback): void {
    super._transform(chunk, enc, (e, d) => (e ? cb(this.toMismatch(e)) : cb(null, d)));
  }
  override _flush(cb: TransformCallback): void {
    super._flush((e, d) => (e ? cb(this.toMismatch(e)) : cb(null, d)));
  }
}

/**
 * The layer's original blob, re-created from its spliced tar `tar` by `r` and checked against
 * `target` as it streams: a recipe that writes other bytes (another gzip or zstd version here
 * than at blockify) fails with RecipeMismatch naming layer `i`, before a writer may give the
 * bytes that name.
 */
export function recreateLayer(tar: Readable, r: Recipe, target: Descriptor, i: number, uncompressedSize: number): Readable {
  const what = `layer ${i + 1} (${target.digest})`;
  const check = new RecipeCheck(target, what, (e) => new RecipeMismatch(target, `${what}: ${describeRecipe(r)} no longer re-creates its blob here (${e.message})`, e));
  return pipeline(tar, recompressor(r, uncompressedSize, `re-create ${what}`), check, () => {});
}
