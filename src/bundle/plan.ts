import type { Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/types.js';
import type { BundlePrerequisite, BundleReferrer, BundleTarget } from './format.js';

/** One standard layer of a target: what a layer-level update (docker pull / docker save) moves. */
export interface StandardLayer {
  diffId: Digest;
  /** Digest of the layer blob in the image (block-form or not). */
  blob: Digest;
  /** Uncompressed size of the standard layer. */
  size: number;
}

/** An image the receiver should end up with, as read from the sender's side. */
export interface WantImage {
  name: string;
  /** What the name is tagged to: the index (block form) or manifest. */
  top: Descriptor;
  /** Every blob reachable from `top`, `top` included. */
  blobs: Descriptor[];
  layers: StandardLayer[];
  /** The image config's size. */
  configSize: number;
  /** Signatures, SBOMs and attestations travelling with it; their blobs are in `blobs`. */
  referrers?: BundleReferrer[];
}

/** What the receiver holds: blob digests, and the diff_ids of its images' standard layers. */
export interface Have {
  blobs: ReadonlySet<Digest>;
  diffIds: ReadonlySet<Digest>;
}

/** The plan for one target, for the side-by-side report. */
export interface TargetPlan {
  name: string;
  digest: Digest;
  /** The standard image: uncompressed layers plus config. */
  imageBytes: number;
  /** Standard layers the receiver lacks, by diff_id: what a layer-level update sends. */
  layerLevel: { layers: number; bytes: number };
  /** Blobs of this target the bundle carries (shared ones count for every target using them). */
  send: { blobs: number; bytes: number };
}

export interface PlanSizes {
  /** Uncompressed standard images of all targets (shared layers once). */
  image: number;
  /** Every blob the targets reach: a bundle with nothing assumed. */
  full: number;
  /** Missing standard layers, uncompressed, each diff_id once. */
  layerLevel: number;
  /** Blobs this bundle carries, before compression. */
  send: number;
  prerequisites: number;
}

export interface BundlePlan {
  targets: BundleTarget[];
  /** Blobs to carry, each once, in walk order (targets in the order given). */
  send: Descriptor[];
  /** Blobs the targets need that the receiver already holds. */
  prerequisites: BundlePrerequisite[];
  sizes: PlanSizes;
  perTarget: TargetPlan[];
  /** The targets' referrers, in target order. */
  referrers: BundleReferrer[];
}

const sum = (xs: { size: number }[]) => xs.reduce((n, x) => n + x.size, 0);

function unique<T>(xs: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => !seen.has(key(x)) && Boolean(seen.add(key(x))));
}

/** The layers a layer-level update would send: diff_ids the receiver lacks in any form. */
function missingLayers(img: WantImage, have: Have): StandardLayer[] {
  return img.layers.filter((l) => !have.diffIds.has(l.diffId) && !have.blobs.has(l.blob));
}

/**
 * Pure planning: send = want - have, prerequisites = want ∩ have, where want is every blob the
 * targets reach. Blobs shared by several targets travel once. No I/O.
 */
export function plan(want: WantImage[], have: Have): BundlePlan {
  const all = unique(want.flatMap((w) => w.blobs), (d) => d.digest);
  const send = all.filter((d) => !have.blobs.has(d.digest));
  const prerequisites = all.filter((d) => have.blobs.has(d.digest)).map((d) => ({ digest: d.digest, size: d.size }));
  const perTarget = want.map((w): TargetPlan => {
    const missing = missingLayers(w, have);
    const mine = unique(w.blobs, (d) => d.digest).filter((d) => !have.blobs.has(d.digest));
    return {
      name: w.name,
      digest: w.top.digest,
      imageBytes: sum(unique(w.layers, (l) => l.diffId)) + w.configSize,
      layerLevel: { layers: missing.length, bytes: sum(missing) },
      send: { blobs: mine.length, bytes: sum(mine) },
    };
  });
  const layers = unique(want.flatMap((w) => w.layers), (l) => l.diffId);
  const configs = want.reduce((n, w) => n + w.configSize, 0);
  return {
    targets: want.map((w) => ({ name: w.name, descriptor: w.top })),
    send,
    prerequisites,
    perTarget,
    referrers: want.flatMap((w) => w.referrers ?? []),
    sizes: {
      image: sum(layers) + configs,
      full: sum(all),
      layerLevel: sum(unique(want.flatMap((w) => missingLayers(w, have)), (l) => l.diffId)),
      send: sum(send),
      prerequisites: sum(prerequisites),
    },
  };
}
