import type { Digest } from '../digest/digest.js';
import { OciLayout } from '../oci/layout.js';
import { Annotation } from '../oci/media-types.js';
import { checkPrerequisites, checkSignature, type ApplyOptions, type ApplyResult } from './apply.js';
import { openBundle } from './read.js';
import { downgrades, Releases, refuseDowngrade } from './releases.js';
import { trustedKeys } from './sign.js';

export interface ApplyPlan {
  dryRun: true;
  bundle: Digest;
  files: string[];
  created?: string;
  signature: ApplyResult['signature'];
  /** Each target: the image it would tag, what the tag names now, and its release. */
  targets: { name: string; digest: Digest; previous?: Digest; changed: boolean; release?: number }[];
  /** Blobs the store would get (their size once decoded, and what they take in the bundle), and those it holds. */
  blobs: { total: number; add: number; addBytes: number; storedBytes: number; present: number };
  prerequisites: number;
  /** Tags that --allow-downgrade would move to an older release. */
  downgraded: string[];
  /** Signatures, SBOMs and attestations it would list beside the targets. */
  referrers: number;
}

/**
 * What `apply` would do, without the lock and without writing: the same refusals (signature,
 * rollback, prerequisites) as the same error, else the tags it would move and the blobs it would
 * add. Reads bundle.json only; blobs the store holds are counted, not hashed.
 */
export async function dryRunApply(files: string[], home: string, opts: ApplyOptions = {}): Promise<ApplyPlan> {
  const layout = new OciLayout(home);
  const b = await openBundle(files);
  const label = b.files.length > 1 ? `${b.files[0]} (+${b.files.length - 1} volumes)` : b.files[0];
  const signature = checkSignature(b, await trustedKeys(opts.trust, home), label);
  const older = downgrades(b.manifest, await new Releases(home).read());
  if (older.length && !opts.allowDowngrade) refuseDowngrade(older, label);
  await checkPrerequisites(b.manifest, layout, label);
  const blobs = { total: b.manifest.blobs.length, add: 0, addBytes: 0, storedBytes: 0, present: 0 };
  for (const x of b.manifest.blobs) {
    if ((await layout.blobs.size(x.digest)) === x.size) blobs.present++;
    else {
      blobs.add++;
      blobs.addBytes += x.size;
      blobs.storedBytes += x.storedSize;
    }
  }
  const index = await layout.readIndex().catch(() => ({ manifests: [] as { digest: Digest; annotations?: Record<string, string> }[] }));
  const targets = b.manifest.targets.map((t) => {
    const previous = index.manifests.find((d) => d.annotations?.[Annotation.refName] === t.name)?.digest;
    return { name: t.name, digest: t.descriptor.digest, previous, changed: previous !== t.descriptor.digest, release: t.release };
  });
  return { dryRun: true, bundle: b.digest, files: b.files, created: b.manifest.created, signature, targets, blobs, prerequisites: b.manifest.prerequisites.length, downgraded: older.map((d) => d.name), referrers: b.manifest.referrers?.length ?? 0 };
}
