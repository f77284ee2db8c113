import type { Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { parseJson } from './json.js';
import { isImageManifest, isIndex } from './media-types.js';
import { checkDescriptor } from './resolve.js';
import type { Descriptor, ImageIndex, ImageManifest } from './types.js';

/** Reads a small JSON blob (index or manifest), verified against its descriptor. */
export type ReadBlob = (d: Descriptor) => Promise<Buffer>;

/** Nesting deeper than this is refused: real images use one index level, block form two at most. */
const MAX_DEPTH = 4;

/** Descriptors an index or manifest points to (not `subject`: referrers point at it, not the reverse). */
function children(d: Descriptor, bytes: Buffer, where: string): Descriptor[] {
  const at = `${where}: ${d.digest}`;
  if (isIndex(d)) {
    const idx = parseJson<ImageIndex>(bytes, at);
    if (!Array.isArray(idx?.manifests)) throw new BlockportError('ECORRUPT', `${at}: index has no manifests`);
    return idx.manifests.map((m, i) => checkDescriptor(m, `${at}: manifests[${i}]`));
  }
  const m = parseJson<ImageManifest>(bytes, at);
  if (!m || !Array.isArray(m.layers)) throw new BlockportError('ECORRUPT', `${at}: manifest has no layers`);
  return [
    checkDescriptor(m.config, `${at}: config`),
    ...m.layers.map((l, i) => checkDescriptor(l, `${at}: layers[${i}]`)),
    ...(m.blocks ?? []).map((b, i) => checkDescriptor(b, `${at}: blocks[${i}]`)),
  ];
}

/**
 * Every blob reachable from `top`, `top` included, each once, in walk order (parents before
 * children): indexes, manifests (block-form and carriers), configs (the empty one too), layers and
 * blocks. Only indexes and manifests are read.
 */
export async function reachable(top: Descriptor, read: ReadBlob, where: string): Promise<Descriptor[]> {
  const out = new Map<Digest, Descriptor>();
  const visit = async (d: Descriptor, depth: number): Promise<void> => {
    if (out.has(d.digest)) return;
    out.set(d.digest, { mediaType: d.mediaType, digest: d.digest, size: d.size });
    if (!isIndex(d) && !isImageManifest(d)) return;
    if (depth > MAX_DEPTH) throw new BlockportError('EUNSUPPORTED', `${where}: indexes nested too deep`);
    for (const c of children(d, await read(d), where)) await visit(c, depth + 1);
  };
  await visit(top, 0);
  return [...out.values()];
}
