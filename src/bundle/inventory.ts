import { promises as fsp } from 'node:fs';
import { writeFileAtomic } from '../cas/atomic.js';
import { parseDigest, type Digest } from '../digest/digest.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { parseJson } from '../oci/json.js';
import type { OciLayout } from '../oci/layout.js';
import { Annotation } from '../oci/media-types.js';
import { resolveImage } from '../oci/resolve.js';
import type { Have } from './plan.js';

export const INVENTORY_VERSION = 1;

/** What a receiver holds, for the sender to bundle only the rest (`bundle --have FILE`). */
export interface Inventory {
  version: typeof INVENTORY_VERSION;
  /** Every blob in the store. */
  blobs: Digest[];
  /** Every tag and the digest it names. */
  images: { name: string; digest: Digest }[];
  /** diff_ids of the tagged images' standard layers: lets the sender compare with a layer-level update. */
  diffIds: Digest[];
}

/** Lists the store: blobs, tags, and the diff_ids of the tagged images that resolve. */
export async function inventory(layout: OciLayout): Promise<Inventory> {
  const blobs: Digest[] = [];
  for await (const d of layout.blobs.list()) blobs.push(d);
  blobs.sort();
  const index = await layout.readIndex().catch((err) => {
    if (err instanceof BlockportError && err.code === 'ENOTFOUND') return { manifests: [] };
    throw err;
  });
  const images: Inventory['images'] = [];
  const diffIds = new Set<Digest>();
  for (const d of index.manifests) {
    const name = d.annotations?.[Annotation.refName];
    if (name !== undefined) images.push({ name, digest: d.digest });
    // an image with missing blobs still lists what it has; fsck reports it
    const img = await resolveImage(d, (x) => layout.readBlob(x), name ?? d.digest).catch(() => undefined);
    for (const id of img?.config.rootfs.diff_ids ?? []) diffIds.add(id);
  }
  return { version: INVENTORY_VERSION, blobs, images, diffIds: [...diffIds].sort() };
}

export async function writeInventory(file: string, inv: Inventory): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(inv, null, 2)}\n`);
}

/** Reads an inventory file as what the receiver has. */
export async function readInventory(file: string): Promise<Have & { images: Inventory['images'] }> {
  const bytes = await fsp.readFile(file).catch((err) => Promise.reject(fromSystemError(err, file)));
  const inv = parseJson<Partial<Inventory>>(bytes, file);
  if (inv?.version !== INVENTORY_VERSION) throw new BlockportError('EUNSUPPORTED', `${file}: inventory version ${JSON.stringify(inv?.version)} is not supported (want ${INVENTORY_VERSION})`);
  if (!Array.isArray(inv.blobs)) throw new BlockportError('ECORRUPT', `${file}: no blobs array`);
  const blobs = new Set(inv.blobs.map((d, i) => parseDigest(d, `${file}: blobs[${i}]`)));
  const diffIds = new Set((inv.diffIds ?? []).map((d, i) => parseDigest(d, `${file}: diffIds[${i}]`)));
  const images = Array.isArray(inv.images) ? inv.images.filter((x) => typeof x?.name === 'string' && typeof x?.digest === 'string') : [];
  return { blobs, diffIds, images };
}
