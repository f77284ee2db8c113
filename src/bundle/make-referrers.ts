import type { ImageReader } from '../oci/image.js';
import type { Descriptor } from '../oci/types.js';
import { checkReferrers, findReferrers } from '../referrers/copy.js';
import { referrerSource } from '../referrers/places.js';
import { standsFor } from '../referrers/referrer.js';
import type { BundleReferrer } from './format.js';

/** What travels with one target: its referrers and every blob they reach. */
export interface TargetReferrers {
  referrers: BundleReferrer[];
  blobs: Descriptor[];
}

/**
 * The signatures, SBOMs and attestations of the image `src` (named `name` in the bundle), found
 * where it lives for every digest it stands for, each blob read and verified: a missing or corrupt
 * one is refused here, naming the referrer, before the bundle file is begun. A referrer of another
 * digest is not the image's and stays behind.
 */
export async function targetReferrers(src: ImageReader, name: string): Promise<TargetReferrers> {
  const place = referrerSource(src);
  if (!place) return { referrers: [], blobs: [] };
  const checked = await checkReferrers(place, await findReferrers(place, standsFor(src)));
  return {
    referrers: checked.map((r) => ({ target: name, subject: r.subject, descriptor: r.descriptor, ...(r.tag ? { tag: r.tag } : {}) })),
    blobs: checked.flatMap((r) => r.blobs),
  };
}
