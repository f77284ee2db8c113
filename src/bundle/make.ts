import type { Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import type { ImageReader } from '../oci/image.js';
import { openImage, parseRef } from '../oci/transport.js';
import { deltaReport, measureDeltas, ownerSource, patchedSizes, prepareDeltas, type DeltaReport } from './make-delta.js';
import { readInventory } from './inventory.js';
import { prepareRecipes } from './make-recipe.js';
import { plan, type BundlePlan, type Have } from './plan.js';
import { reachable } from '../oci/graph.js';
import { loadPrivateKey } from './sign.js';
import { describeWant, parseTarget } from './source.js';
import { targetReferrers } from './make-referrers.js';
import { writeBundle, type WriteBundleOptions, type WriteBundleResult } from './write.js';

export interface MakeBundleOptions {
  /** Targets: store NAME:TAG, a transport reference, or NAME:TAG=REF. */
  to: string[];
  /** Images the receiver holds. */
  since?: string[];
  /** An inventory file written by `blockport inventory` on the receiver. */
  have?: string;
  /** Output file; not needed for a dry run. */
  out?: string;
  /** Private key file to sign with. */
  sign?: string;
  split?: number;
  compress?: boolean;
  /** Send changed blocks and layers as deltas (zstd or VCDIFF) against what the `since` images hold. */
  delta?: boolean;
  /** Send changed tars (layers, folder blocks) as recipes copying unchanged files from the `since` images, when smaller (default true; never with compress false). */
  recipes?: boolean;
  dryRun?: boolean;
  /** Carry the targets' signatures, SBOMs and attestations (default true). */
  referrers?: boolean;
  /** The release number of every target (default: the creation time in ms since the epoch). */
  release?: number;
  onProgress?: WriteBundleOptions['onProgress'];
}

export interface MakeBundleResult {
  plan: BundlePlan;
  /** With --delta: the patches (a dry run keeps those smaller than the blob; a write, those smaller than its plain encoding). */
  deltas?: DeltaReport;
  /** The signatures, SBOMs and attestations that travel with the targets: how many, their blobs and bytes (each blob once). */
  referrers: { count: number; blobs: number; bytes: number };
  /** What was written; absent on a dry run. */
  written?: Omit<WriteBundleResult, 'manifest'>;
}

/** The smallest volume `bundle --split` writes: below, a bundle becomes thousands of files. */
export const MIN_SPLIT = 1 << 20;

/** Now, or $SOURCE_DATE_EPOCH (seconds) for reproducible bundles. */
function creationTime(): string {
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000).toISOString();
  return new Date().toISOString();
}

/** True when `ref` is a store NAME:TAG (not a transport reference). */
function storeName(ref: string): boolean {
  try {
    return parseRef(ref).transport === 'store';
  } catch {
    return false;
  }
}

/** What the receiver holds according to --since images and a --have inventory. */
async function receiverHas(since: ImageReader[], haveFile: string | undefined): Promise<Have> {
  const blobs = new Set<Digest>();
  const diffIds = new Set<Digest>();
  for (const src of since) {
    for (const d of await reachable(src.top, (x) => src.readBlob(x), src.ref)) blobs.add(d.digest);
    for (const id of src.config.rootfs.diff_ids) diffIds.add(id);
  }
  if (haveFile) {
    const inv = await readInventory(haveFile);
    for (const d of inv.blobs) blobs.add(d);
    for (const d of inv.diffIds) diffIds.add(d);
  }
  return { blobs, diffIds };
}

/**
 * Plans (and unless a dry run, writes) a bundle of the `to` images holding only what the receiver
 * lacks according to `since` and `have`. With `delta`, blobs that have an older version in the
 * `since` images travel as deltas against it when that is smaller.
 */
export async function makeBundle(opts: MakeBundleOptions): Promise<MakeBundleResult> {
  if (opts.to.length === 0) throw new BlockportError('EUSAGE', 'name at least one image to send with --to');
  if (!opts.dryRun && !opts.out) throw new BlockportError('EUSAGE', 'name the bundle file with -o FILE (or use --dry-run)');
  if (opts.split !== undefined && opts.split < MIN_SPLIT) throw new BlockportError('EUSAGE', `--split ${opts.split}: volumes must be at least 1M (${MIN_SPLIT} bytes); smaller ones only make thousands of files`);
  if (opts.delta && !opts.since?.length) throw new BlockportError('EUSAGE', '--delta needs --since: the images whose blobs the receiver holds and this side can read');
  const signKey = opts.sign && !opts.dryRun ? await loadPrivateKey(opts.sign) : undefined;
  const targets = opts.to.map(parseTarget);
  const dup = targets.find((t, i) => targets.findIndex((u) => u.name === t.name) !== i);
  if (dup) throw new BlockportError('EUSAGE', `${dup.name} is named by two --to targets`);
  const sources: ImageReader[] = [];
  const held: ImageReader[] = [];
  try {
    const wants = [];
    const carried = new Map<string, number>();
    let referrers = 0;
    for (const t of targets) {
      // a bundle carries every platform: any one of an index serves as the reader's own
      const src = await openImage(t.ref, t.label, { platform: 'any' });
      sources.push(src);
      const want = await describeWant(src, t.name);
      if (opts.referrers !== false) {
        const r = await targetReferrers(src, t.name);
        want.blobs.push(...r.blobs);
        want.referrers = r.referrers;
        referrers += r.referrers.length;
        for (const d of r.blobs) carried.set(d.digest, d.size);
      }
      wants.push(want);
    }
    const refTally = { count: referrers, blobs: carried.size, bytes: [...carried.values()].reduce((n, x) => n + x, 0) };
    for (const ref of opts.since ?? []) held.push(await openImage(ref, undefined, { platform: 'any' }));
    const have = await receiverHas(held, opts.have);
    const p = plan(wants, have);
    const blobs = await ownerSource(wants.map((w) => w.blobs), sources);
    const deltas = opts.delta ? await prepareDeltas(sources, held, p, have) : undefined;
    if (opts.dryRun) {
      if (!deltas) return { plan: p, referrers: refTally };
      let done = 0;
      const total = deltas.candidates.reduce((n, c) => n + c.blob.size, 0);
      const used = await measureDeltas(deltas.candidates, blobs, deltas.bases, (d) => opts.onProgress?.({ phase: 'delta', done: (done += d.size), total }));
      return { plan: p, referrers: refTally, deltas: deltaReport(deltas.candidates, used, wants, p) };
    }
    // a recipe is zstd frames: --no-compress (blobs as they are, no zstd needed) sends none
    const recipes = opts.recipes === false || opts.compress === false ? undefined : await prepareRecipes(held, have);
    const created = creationTime();
    const release = opts.release ?? Date.parse(created);
    const since = held.map((h) => ({ ...(storeName(h.ref) ? { name: h.ref } : {}), digest: h.top.digest }));
    const { manifest, ...written } = await writeBundle(p, blobs, opts.out!, { compress: opts.compress, signKey, split: opts.split, deltas, recipes, onProgress: opts.onProgress, release, created, since });
    return { plan: p, referrers: refTally, written, deltas: deltas && deltaReport(deltas.candidates, patchedSizes(manifest.blobs), wants, p) };
  } finally {
    for (const s of [...sources, ...held]) await s.close();
  }
}
