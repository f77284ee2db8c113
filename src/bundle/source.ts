import { BlockportError } from '../errors.js';
import type { ImageReader } from '../oci/image.js';
import { Annotation } from '../oci/media-types.js';
import { checkNameTag } from '../oci/reference.js';
import { parseRef, transportOf, type ImageRef } from '../oci/transport.js';
import type { Descriptor } from '../oci/types.js';
import type { StandardLayer, WantImage } from './plan.js';
import { reachable } from '../oci/graph.js';

function isNameTag(s: string): boolean {
  try {
    checkNameTag(s, s);
    return true;
  } catch {
    return false;
  }
}

/**
 * A --to argument: `NAME:TAG` (the store), `REF` (a transport reference; its name is the archive's
 * NAME:TAG, or the folder's base name with the oci tag), or `NAME:TAG=REF` to name it explicitly.
 */
export function parseTarget(arg: string): { name: string; ref: ImageRef; label: string } {
  // a store name never holds '=', so "NAME:TAG=REF" cannot be mistaken for a reference
  const eq = arg.indexOf('=');
  const named = eq > 0 && isNameTag(arg.slice(0, eq));
  if (named) return { name: arg.slice(0, eq), ref: parseRef(arg.slice(eq + 1)), label: arg.slice(eq + 1) };
  const ref = parseRef(arg);
  const t = transportOf(ref);
  const own = t.nameOf?.(ref);
  if (own) return { name: own, ref, label: arg };
  try {
    return { name: checkNameTag(t.guessName?.(ref) ?? '', arg), ref, label: arg };
  } catch {
    throw new BlockportError('EUSAGE', `${arg}: cannot tell which NAME:TAG the receiver should use; write --to NAME:TAG=${arg}`);
  }
}

/**
 * The uncompressed size of a layer: blockport's annotation, else the blob size (exact for an
 * uncompressed layer, a lower bound for a compressed one; planning reads no layer).
 */
function standardSize(l: Descriptor): number {
  const known = l.annotations?.[Annotation.layerSize];
  return known !== undefined && /^\d+$/.test(known) ? Number(known) : l.size;
}

/** Reads what planning needs of one image: reachable blobs and standard layers. */
export async function describeWant(src: ImageReader, name: string): Promise<WantImage> {
  const blobs = await reachable(src.top, (d) => src.readBlob(d), src.ref);
  const layers: StandardLayer[] = src.manifest.layers.map((l, i) => ({ diffId: src.config.rootfs.diff_ids[i], blob: l.digest, size: standardSize(l) }));
  return { name, top: src.top, blobs, layers, configSize: src.manifest.config.size };
}
