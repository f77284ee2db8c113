import { Readable } from 'node:stream';
import type { Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { isManifestLike } from '../oci/copy-image.js';
import { reachable } from '../oci/graph.js';
import { parseJson } from '../oci/json.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import { referrerLabel, type Referrer, type ReferrerSink, type ReferrerSource } from './referrer.js';

/** Referrers of referrers are followed this deep (a signature of an attestation of the image is 2). */
export const MAX_DEPTH = 3;
/** More referrers than this for one image is refused: a registry or layout that lists without end. */
export const MAX_REFERRERS = 1000;

/** A referrer with every blob it reaches (its manifest first), checked present and whole. */
export interface CheckedReferrer extends Referrer {
  blobs: Descriptor[];
}

/** What copying referrers wrote: how many, their blobs and bytes, and what the destination had. */
export interface ReferrerTally {
  referrers: number;
  blobs: number;
  bytes: number;
  /** Blobs (and bytes) the destination lacked and received. */
  moved: { blobs: number; bytes: number };
}

/**
 * Every referrer of `subjects` in `src`, and theirs in turn (to MAX_DEPTH), each once: the
 * signatures, SBOMs and attestations that travel with an image.
 */
export async function findReferrers(src: ReferrerSource, subjects: Digest[]): Promise<Referrer[]> {
  const found = new Map<string, Referrer>();
  let level = [...new Set(subjects)];
  const asked = new Set<Digest>(level);
  for (let depth = 0; depth < MAX_DEPTH && level.length; depth++) {
    const next: Digest[] = [];
    for (const subject of level) {
      for (const r of await src.list(subject)) {
        const key = `${r.tag ?? ''} ${r.descriptor.digest}`;
        if (found.has(key)) continue;
        found.set(key, r);
        if (found.size > MAX_REFERRERS) throw new BlockportError('EUNSUPPORTED', `${src.where}: more than ${MAX_REFERRERS} referrers of ${subjects[0]}`, { subject: subjects[0] });
        if (!asked.has(r.descriptor.digest)) {
          asked.add(r.descriptor.digest);
          next.push(r.descriptor.digest);
        }
      }
    }
    level = next;
  }
  return [...found.values()];
}

/**
 * Reads every blob of each referrer once, verified (small ones whole, the rest streamed), so a
 * missing or corrupt one is named before anything is written: "REF: referrer X of D: ...".
 */
export async function checkReferrers(src: ReferrerSource, refs: Referrer[]): Promise<CheckedReferrer[]> {
  const out: CheckedReferrer[] = [];
  // refs come parents first (findReferrers): what refers to a referrer left out is left out too
  const left = new Set<Digest>();
  for (const r of refs) {
    if (left.has(r.subject)) {
      left.add(r.descriptor.digest);
      continue;
    }
    try {
      const doc = parseJson<ImageManifest>(await src.readBlob(r.descriptor), `${src.where}: ${r.descriptor.digest}`);
      // a listing may be stale or wrong: an OCI 1.1 referrer of another digest is not this image's
      if (!r.tag && doc?.subject?.digest !== r.subject) {
        left.add(r.descriptor.digest);
        continue;
      }
      const blobs = await reachable(r.descriptor, (d) => src.readBlob(d), src.where);
      for (const d of blobs) if (!isManifestLike(d)) for await (const _ of await src.openBlob(d));
      // the referrers API lists each with its artifactType: the manifest's, else its config's media type
      const artifactType = r.descriptor.artifactType ?? doc.artifactType ?? (r.tag ? undefined : doc.config?.mediaType);
      out.push({ ...r, descriptor: { ...r.descriptor, ...(artifactType ? { artifactType } : {}) }, blobs });
    } catch (err) {
      if (!(err instanceof BlockportError)) throw err;
      throw new BlockportError(err.code, `${src.where}: referrer ${referrerLabel(r)} of ${r.subject}: ${err.message}`, { subject: r.descriptor.digest, cause: err });
    }
  }
  return out;
}

/**
 * Writes checked referrers to `dst`, each through its own writer: blobs the destination lacks,
 * verified on the way in, then the manifest, then its tag or listing. Blobs already there are
 * skipped, so signatures shared by several images travel once.
 */
export async function writeReferrers(src: ReferrerSource, refs: CheckedReferrer[], dst: ReferrerSink): Promise<ReferrerTally> {
  const tally: ReferrerTally = { referrers: 0, blobs: 0, bytes: 0, moved: { blobs: 0, bytes: 0 } };
  for (const r of refs) {
    const w = await dst.writer(r);
    try {
      for (const d of r.blobs.filter((x) => !isManifestLike(x))) {
        tally.blobs++;
        tally.bytes += d.size;
        if (await w.hasBlob(d)) continue;
        await w.putBlob(await src.openBlob(d), { digest: d.digest, size: d.size });
        tally.moved.blobs++;
        tally.moved.bytes += d.size;
      }
      // manifests last, children first: a registry writer PUTs them at commit
      for (const d of r.blobs.filter(isManifestLike).reverse()) {
        tally.blobs++;
        tally.bytes += d.size;
        await w.putBlob(Readable.from([await src.readBlob(d)]), { digest: d.digest, size: d.size });
      }
      await w.commit(r.descriptor);
      tally.referrers++;
    } catch (err) {
      await w.abort();
      throw err;
    }
  }
  return tally;
}

/** Finds, checks and writes the referrers of `subjects` from `src` to `dst`. */
export async function copyReferrers(src: ReferrerSource, subjects: Digest[], dst: ReferrerSink): Promise<ReferrerTally> {
  return writeReferrers(src, await checkReferrers(src, await findReferrers(src, subjects)), dst);
}
