import type { Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { resolveImage } from '../oci/resolve.js';
import type { Descriptor } from '../oci/types.js';
import { readInventory } from './inventory.js';
import { plan, type BundlePlan, type Have } from './plan.js';
import { reachable } from './reachable.js';
import { loadPrivateKey } from './sign.js';
import { describeWant, openSource, parseTarget, type ImageSource } from './source.js';
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
  dryRun?: boolean;
  onProgress?: WriteBundleOptions['onProgress'];
}

export interface MakeBundleResult {
  plan: BundlePlan;
  /** What was written; absent on a dry run. */
  written?: Omit<WriteBundleResult, 'manifest'>;
}

/** What the receiver holds according to --since images and a --have inventory. */
async function receiverHas(since: string[], haveFile: string | undefined): Promise<Have> {
  const blobs = new Set<Digest>();
  const diffIds = new Set<Digest>();
  for (const ref of since) {
    const src = await openSource(ref);
    try {
      for (const d of await reachable(src.top, (x) => src.read(x), ref)) blobs.add(d.digest);
      const img = await resolveImage(src.top, (x) => src.read(x), ref);
      for (const id of img.config.rootfs.diff_ids) diffIds.add(id);
    } finally {
      await src.close();
    }
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
 * lacks according to `since` and `have`.
 */
export async function makeBundle(opts: MakeBundleOptions): Promise<MakeBundleResult> {
  if (opts.to.length === 0) throw new BlockportError('EUSAGE', 'name at least one image to send with --to');
  if (!opts.dryRun && !opts.out) throw new BlockportError('EUSAGE', 'name the bundle file with -o FILE (or use --dry-run)');
  const signKey = opts.sign && !opts.dryRun ? await loadPrivateKey(opts.sign) : undefined;
  const targets = opts.to.map(parseTarget);
  const dup = targets.find((t, i) => targets.findIndex((u) => u.name === t.name) !== i);
  if (dup) throw new BlockportError('EUSAGE', `${dup.name} is named by two --to targets`);
  const sources: ImageSource[] = [];
  try {
    const wants = [];
    for (const t of targets) {
      const src = await openSource(t.ref, t.label);
      sources.push(src);
      wants.push(await describeWant(src, t.name));
    }
    const p = plan(wants, await receiverHas(opts.since ?? [], opts.have));
    if (opts.dryRun) return { plan: p };
    const owner = new Map<Digest, ImageSource>();
    wants.forEach((w, i) => w.blobs.forEach((d) => owner.has(d.digest) || owner.set(d.digest, sources[i])));
    const blobs = { open: (d: Descriptor) => owner.get(d.digest)!.open(d), path: (d: Descriptor) => owner.get(d.digest)!.files?.path(d.digest) };
    const { manifest: _m, ...written } = await writeBundle(p, blobs, opts.out!, { compress: opts.compress, signKey, split: opts.split, onProgress: opts.onProgress });
    return { plan: p, written };
  } finally {
    for (const s of sources) await s.close();
  }
}
