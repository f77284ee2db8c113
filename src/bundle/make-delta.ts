import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '../digest/digest.js';
import type { ImageReader } from '../oci/image.js';
import type { Descriptor } from '../oci/types.js';
import { blockPath, planDeltas, type DeltaCandidate, type DeltaImage, type DeltaMatch } from './delta.js';
import { encodeDeltas } from './delta-encode.js';
import type { BlobSource } from './encode.js';
import { isDelta, type BundleBlob } from './format.js';
import type { BundlePlan, Have, WantImage } from './plan.js';

/** What --delta did: each blob sent as a patch, and the bytes to send with patches in place. */
export interface DeltaReport {
  /** Blobs that had a base and were encoded against it. */
  tried: number;
  blobs: { digest: Digest; size: number; path?: string; base: { digest: Digest; size: number; path?: string }; match: DeltaMatch; storedSize: number }[];
  /** Per target: blob bytes before compression, each patched blob counted at its patch's size. */
  perTarget: { name: string; bytes: number }[];
  /** The same over all targets, shared blobs once. */
  bytes: number;
}

/**
 * Reads blobs from whichever source lists them first; blob files (a layout's, the store's) are
 * located once, here, so encoders can hand them to zstd by name.
 */
export async function ownerSource(lists: Descriptor[][], sources: ImageReader[]): Promise<BlobSource> {
  const owner = new Map<Digest, ImageReader>();
  const files = new Map<Digest, string>();
  for (const [i, l] of lists.entries()) {
    for (const d of l) {
      if (owner.has(d.digest)) continue;
      owner.set(d.digest, sources[i]);
      const spot = await sources[i].locate(d);
      if (spot?.blobFile) files.set(d.digest, spot.path);
    }
  }
  return { open: (d) => owner.get(d.digest)!.openBlob(d), path: (d) => files.get(d.digest) };
}

/** The layers and blocks of an image with their annotations (reachable() keeps only digests). */
function deltaImage(src: ImageReader): DeltaImage {
  return { layers: src.manifest.layers, blocks: src.manifest.blocks ?? [] };
}

/** The blobs of the plan that have a base in the `held` images, and where to read those bases. */
export async function prepareDeltas(targets: ImageReader[], held: ImageReader[], p: BundlePlan, have: Have): Promise<{ candidates: DeltaCandidate[]; bases: BlobSource }> {
  const heldImages = held.map(deltaImage);
  const candidates = planDeltas(targets.map(deltaImage), heldImages, new Set(p.send.map((d) => d.digest)), have.blobs);
  return { candidates, bases: await ownerSource(heldImages.map((h) => [...h.layers, ...h.blocks]), held) };
}

/** For a dry run: encodes every candidate in a temp folder and keeps the sizes of those smaller than their blob. */
export async function measureDeltas(candidates: DeltaCandidate[], blobs: BlobSource, bases: BlobSource, onBlob?: (d: Descriptor) => void): Promise<Map<Digest, number>> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-delta-'));
  try {
    const results = await encodeDeltas(candidates, blobs, bases, dir, { onBlob });
    return new Map([...results].filter(([, r]) => r.storedSize < r.candidate.blob.size).map(([d, r]) => [d, r.storedSize]));
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** The patches (zstd or VCDIFF) a written bundle carries: digest -> patch size. */
export function patchedSizes(blobs: BundleBlob[]): Map<Digest, number> {
  return new Map(blobs.filter((b) => isDelta(b.encoding)).map((b) => [b.digest, b.storedSize]));
}

/** Side-by-side numbers: what each target costs once the patches replace their blobs. */
export function deltaReport(candidates: DeltaCandidate[], used: Map<Digest, number>, wants: WantImage[], p: BundlePlan): DeltaReport {
  const sending = new Set(p.send.map((d) => d.digest));
  const cost = (ds: Descriptor[]) => {
    const seen = new Set<Digest>();
    return ds.filter((d) => sending.has(d.digest) && !seen.has(d.digest) && Boolean(seen.add(d.digest))).reduce((n, d) => n + (used.get(d.digest) ?? d.size), 0);
  };
  const blobs = candidates.filter((c) => used.has(c.blob.digest)).map((c) => ({
    digest: c.blob.digest,
    size: c.blob.size,
    path: blockPath(c.blob),
    base: { digest: c.base.digest, size: c.base.size, path: blockPath(c.base) },
    match: c.match,
    storedSize: used.get(c.blob.digest)!,
  }));
  return { tried: candidates.length, blobs, perTarget: wants.map((w) => ({ name: w.name, bytes: cost(w.blobs) })), bytes: cost(p.send) };
}
