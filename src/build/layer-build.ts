import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { blockifyLayerFile, blockifyParts, type LayerFileResult } from '../blocks/blockify.js';
import type { BlockRules } from '../blocks/rules.js';
import type { CopyThreads } from '../cas/copy-plan.js';
import { BlockportError } from '../errors.js';
import type { ImageWriter } from '../oci/image.js';
import { Annotation, MediaType, blockLayerType, type Compression } from '../oci/media-types.js';
import { hashLayerTar, layerParts, writeLayerTar, type EntryMeta } from './layer-tar.js';
import { checkUnchanged, type TreeEntry } from './source-tree.js';

export interface LayerBuildOptions {
  rules: BlockRules;
  meta: EntryMeta;
  tmp: string;
  threads: CopyThreads;
  compression: Compression;
  onBytes?: (n: number) => void;
}

/**
 * Makes one layer of `entries` in `dst`, in block form when the rules select anything.
 * Uncompressed (the store, layouts): straight from the source files (copy threads hash the
 * standard tar for the diff_id and write the blocks and the block-form layer; the standard tar is
 * never written), then every file is checked unchanged since it was listed, because the diff_id
 * and the blocks came from different reads. Compressed (a registry's gzip): the standard tar is
 * written to a temp file first, a snapshot, and blockified and compressed from there.
 */
export async function buildLayer(entries: TreeEntry[], dst: ImageWriter, index: number, o: LayerBuildOptions): Promise<LayerFileResult> {
  if (o.compression === 'none') return direct(entries, dst, index, o);
  const file = join(o.tmp, `layer-${index}.tar`);
  try {
    const std = await writeLayerTar(file, entries, o.meta, o.threads).catch((err) => {
      // the copy thread read fewer bytes than the walk saw: the build output is still being written
      if (err instanceof BlockportError && err.code === 'EDIGEST' && err.subject) throw new BlockportError('EDIGEST', `${err.subject}: changed while the image was built (shorter than when listed); build again once it is complete`, { subject: err.subject });
      throw err;
    });
    return await blockifyLayerFile(file, dst, { diffId: std.digest, size: std.size, index }, o);
  } finally {
    await fsp.rm(file, { force: true });
  }
}

async function direct(entries: TreeEntry[], dst: ImageWriter, index: number, o: LayerBuildOptions): Promise<LayerFileResult> {
  const hashing = hashLayerTar(entries, o.meta, o.threads);
  hashing.catch(() => {}); // awaited below, after the layer (whose failure comes first)
  let r: Awaited<ReturnType<typeof blockifyParts>>;
  try {
    r = await blockifyParts(layerParts(entries, o.meta), dst, o);
  } catch (err) {
    // a copy thread found a file shorter than listed: name the file that changed
    if (err instanceof BlockportError && err.code === 'EDIGEST') checkUnchanged(entries);
    throw err;
  } finally {
    await hashing.catch(() => {});
  }
  const std = await hashing.catch((err) => {
    if (err instanceof BlockportError && err.code === 'EDIGEST') checkUnchanged(entries);
    throw err;
  });
  checkUnchanged(entries);
  const blockForm = r.stats.blocks > 0;
  if (!blockForm && r.stored.digest !== std.digest) throw new Error(`layer ${index}: written ${r.stored.digest}, hashed ${std.digest}`);
  const annotations: Record<string, string> = { ...(blockForm ? { [Annotation.diffId]: std.digest } : {}), [Annotation.layerSize]: String(std.size) };
  return {
    layer: { mediaType: blockForm ? blockLayerType('none') : MediaType.ociLayer, digest: r.stored.digest, size: r.stored.size, annotations },
    blocks: r.blocks,
    stats: { index, diffId: std.digest, blockified: blockForm, inputSize: std.size, outputSize: r.stored.size, uncompressedSize: std.size, ...r.stats },
  };
}
