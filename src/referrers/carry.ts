import type { Digest } from '../digest/digest.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import { openWriter, type ImageRef } from '../oci/transport.js';
import { checkReferrers, findReferrers, writeReferrers, type CheckedReferrer, type ReferrerTally } from './copy.js';
import { referrerSink, referrerSource } from './places.js';
import { standsFor, type ReferrerSink, type ReferrerSource } from './referrer.js';

/** An image's referrers, found and checked before its copy begins, to write once the copy is done. */
export interface PendingReferrers {
  source: ReferrerSource;
  referrers: CheckedReferrer[];
}

/**
 * Finds and checks the referrers of every digest `img` stands for where it lives (undefined where
 * that place keeps none: archives). A missing or corrupt referrer blob fails here, before anything
 * is written.
 */
export async function pendingReferrers(img: ImageReader, subjects = standsFor(img)): Promise<PendingReferrers | undefined> {
  const source = referrerSource(img);
  if (!source) return undefined;
  return { source, referrers: await checkReferrers(source, await findReferrers(source, subjects)) };
}

/**
 * Writes pending referrers beside the image `w` wrote (or into `sink`), those whose subject
 * `keep` accepts (default: all). Undefined when there were none to write or no place for them.
 */
export async function carryReferrers(p: PendingReferrers | undefined, w: ImageWriter | ReferrerSink, keep: (r: CheckedReferrer) => boolean = () => true): Promise<ReferrerTally | undefined> {
  const sink = 'writer' in w ? w : referrerSink(w);
  const refs = p?.referrers.filter(keep) ?? [];
  if (!p || !sink || refs.length === 0) return undefined;
  return writeReferrers(p.source, refs, sink);
}

/** What materialize did with an image's referrers. */
export interface MaterializedReferrers {
  written?: ReferrerTally;
  /** Referrers of digests the written image does not have (its manifest was re-encoded): left behind. */
  left: { referrers: number; subjects: Digest[] };
}

/** The transports whose outputs keep referrers beside an image (a layout folder, a registry). */
export const REFERRER_OUTPUTS: readonly string[] = ['oci', 'docker'];

/**
 * Writes beside a materialized image the referrers that still hold: those of a digest the output
 * has (`written`: its manifest, its index), and theirs in turn. The others refer to a manifest
 * this output does not have byte for byte, and are counted as left.
 */
export async function carryToOutput(p: PendingReferrers | undefined, written: Digest[], dst: ImageRef, label: string): Promise<MaterializedReferrers | undefined> {
  if (!p?.referrers.length) return undefined;
  const kept = new Set<Digest>(written);
  const keep = new Set<CheckedReferrer>();
  for (const r of p.referrers) {
    if (!kept.has(r.subject)) continue;
    keep.add(r);
    kept.add(r.descriptor.digest);
  }
  const leftOut = p.referrers.filter((r) => !keep.has(r));
  const left = { referrers: leftOut.length, subjects: [...new Set(leftOut.map((r) => r.subject))] };
  if (keep.size === 0) return { left };
  const w = await openWriter(dst, label);
  try {
    return { written: await carryReferrers(p, w, (r) => keep.has(r)), left };
  } finally {
    await w.abort();
  }
}

/**
 * For outputs that keep no referrers (docker-archive:, oci-archive:): the referrers an image has
 * that the output leaves behind, to say so.
 */
export async function referrersLeft(img: ImageReader): Promise<MaterializedReferrers | undefined> {
  const source = referrerSource(img);
  const found = source ? await findReferrers(source, standsFor(img)) : [];
  if (found.length === 0) return undefined;
  return { left: { referrers: found.length, subjects: [...new Set(found.map((r) => r.subject))] } };
}
