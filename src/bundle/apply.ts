import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir, streamToFileAtomic } from '../cas/atomic.js';
import { digestHex, sha256, type Digest } from '../digest/digest.js';
import { HashingStream, VerifyingStream } from '../digest/verify.js';
import { BlockportError, fromSystemError } from '../errors.js';
import type { FileSpot } from '../oci/image.js';
import { MAX_JSON_BLOB, readSmall } from '../oci/json.js';
import { openFile } from '../cas/blob-store.js';
import { LayoutImageReader, OciLayout } from '../oci/layout.js';
import { Annotation, isBlockLayer } from '../oci/media-types.js';
import { resolveImage, type ResolvedImage } from '../oci/resolve.js';
import { verifySplices, type SpliceCheck } from '../blocks/verify-splices.js';
import { Store } from '../store/store.js';
import { VerifiedLayers } from '../store/verified.js';
import type { Descriptor } from '../oci/types.js';
import { blobMember, type BundleManifest } from './format.js';
import { reachable } from '../oci/graph.js';
import { openBundle, type OpenedBundle } from './read.js';
import { downgrades, Releases, refuseDowngrade } from './releases.js';
import { trustedKeys, verifyManifest } from './sign.js';

export interface ApplyOptions {
  /** Public keys to require a signature from; default: `$BLOCKPORT_HOME/trust/*.pub`, if any. */
  trust?: string[];
  /** Apply a release of a tag older than the one applied before (rollback protection off for this run). */
  allowDowngrade?: boolean;
  onProgress?: (p: { done: number; total: number; label: string }) => void;
}

export interface ApplyResult {
  bundle: Digest;
  files: string[];
  signature: { signed: boolean; verified: boolean; keyId?: Digest; key?: string };
  targets: { name: string; digest: Digest; previous?: Digest; changed: boolean }[];
  blobs: { total: number; received: number; present: number; resumed: number; healed: number };
  /** Bytes of present blobs hashed to check them before skipping them. */
  bytesChecked: number;
  /** Tags applied although older than the release applied before (--allow-downgrade). */
  downgraded: string[];
  /** Blob bytes verified and written in this run. */
  bytesWritten: number;
  /** Block-form layers newly checked to splice into their diff_id (and recorded as such). */
  splices: SpliceCheck;
  /** Signatures, SBOMs and attestations listed beside the targets. */
  referrers: number;
  /** True when the store already held everything and every tag: nothing was changed. */
  noop: boolean;
}

async function sizeOf(p: string): Promise<number | undefined> {
  return fsp.stat(p).then((s) => (s.isFile() ? s.size : undefined), () => undefined);
}

export function checkSignature(b: OpenedBundle, keys: Awaited<ReturnType<typeof trustedKeys>>, label: string): ApplyResult['signature'] {
  if (keys.length === 0) return { signed: Boolean(b.signature), verified: false, keyId: b.signature?.keyId };
  const k = verifyManifest(b.manifestBytes, b.signature, keys, label);
  return { signed: true, verified: true, keyId: k.keyId, key: k.path };
}

/** The prerequisites the store lacks (or holds at another size). */
export async function missingPrerequisites(m: BundleManifest, layout: OciLayout): Promise<Digest[]> {
  const missing: Digest[] = [];
  for (const p of m.prerequisites) if ((await layout.blobs.size(p.digest)) !== p.size) missing.push(p.digest);
  return missing;
}

export async function checkPrerequisites(m: BundleManifest, layout: OciLayout, label: string): Promise<void> {
  const missing = await missingPrerequisites(m, layout);
  if (missing.length === 0) return;
  // name the images the sender built against when the store lacks them: "needs app:1 (sha256:...)"
  const lacking = [];
  for (const x of m.since ?? []) if ((await layout.blobs.size(x.digest)) === undefined) lacking.push(x.name ? `${x.name} (${x.digest})` : x.digest);
  const what = lacking.length ? `needs ${lacking.join(', ')}, which this store lacks (${missing.length} blob(s))` : `needs ${missing.length} blob(s) this store lacks`;
  const list = missing.slice(0, 3).join(', ') + (missing.length > 3 ? `, ... (${missing.length - 3} more)` : '');
  throw new BlockportError('EMISSING', `${label} ${what} (apply the earlier update first, or bundle with --have from 'blockport inventory'): ${list}`, { subject: missing[0] });
}

/**
 * Hashes the store's copy of every blob the bundle carries that the store holds at its size:
 * apply skips those, so a rotten copy would stay forever while the bundle brings a good one
 * (docs/spec.md 14.5, step 5). Costs one sha256 pass over those blobs (350 MB/s measured on one
 * core: ~3 s per GB; nothing on a first apply, where the store lacks them all). Returns the good
 * ones and the bad ones.
 */
export async function checkPresent(m: BundleManifest, layout: OciLayout): Promise<{ good: Set<Digest>; corrupt: Set<Digest>; bytes: number }> {
  const good = new Set<Digest>();
  const corrupt = new Set<Digest>();
  let bytes = 0;
  for (const b of m.blobs) {
    if ((await layout.blobs.size(b.digest)) !== b.size) continue;
    bytes += b.size;
    try {
      for await (const _ of await layout.blobs.open(b.digest, b.size));
      good.add(b.digest);
    } catch (err) {
      if (!(err instanceof BlockportError && err.code === 'EDIGEST')) throw err;
      corrupt.add(b.digest);
    }
  }
  return { good, corrupt, bytes };
}

/** Streams every blob the store lacks into staging, verified; keeps what an interrupted run verified. */
async function receive(b: OpenedBundle, good: ReadonlySet<Digest>, staging: string, opts: ApplyOptions, counts: ApplyResult['blobs']): Promise<number> {
  const total = b.manifest.blobs.reduce((n, x) => n + x.size, 0);
  let done = 0;
  let written = 0;
  const tick = (label: string) => opts.onProgress?.({ done, total, label });
  await fsp.mkdir(staging, { recursive: true }).catch((err) => Promise.reject(fromSystemError(err, staging)));
  for await (const e of b.blobs()) {
    const { blob } = e;
    const label = `blob ${e.index + 1}/${b.manifest.blobs.length}`;
    const staged = join(staging, digestHex(blob.digest));
    if (good.has(blob.digest)) counts.present++;
    else if ((await sizeOf(staged)) === blob.size) counts.resumed++; // renamed there only after verification
    else {
      const check = new VerifyingStream(blob.digest, blob.size, `${b.files[0]}: ${blobMember(blob)}`);
      const count = new HashingStream((n) => {
        done += n;
        tick(label);
      }, false);
      await streamToFileAtomic(staged, e.data(), [check, count]);
      counts.received++;
      written += blob.size;
      continue;
    }
    done += blob.size;
    tick(label);
  }
  await fsyncDir(staging);
  return written;
}

/** Reads a small blob from staging or the store, verified. */
function stagedOrStored(layout: OciLayout, staging: string) {
  return async (d: Descriptor): Promise<Buffer> => {
    const staged = join(staging, digestHex(d.digest));
    if (d.size > MAX_JSON_BLOB) throw new BlockportError('ECORRUPT', `${d.digest}: a ${d.mediaType} of ${d.size} bytes is too large`, { subject: d.digest });
    if ((await sizeOf(staged)) === d.size) {
      const bytes = await fsp.readFile(staged);
      if (sha256(bytes) !== d.digest) throw new BlockportError('EDIGEST', `${staged}: digest mismatch`, { subject: d.digest });
      return bytes;
    }
    return layout.readBlob(d);
  };
}

/** Refuses a bundle whose targets would be incomplete: every reachable blob must be staged or stored. */
async function checkComplete(m: BundleManifest, layout: OciLayout, staging: string, label: string): Promise<void> {
  const read = stagedOrStored(layout, staging);
  for (const t of m.targets) {
    const missing: Digest[] = [];
    for (const d of await reachable(t.descriptor, read, `${label}: ${t.name}`)) {
      const here = (await sizeOf(join(staging, digestHex(d.digest)))) ?? (await layout.blobs.size(d.digest));
      if (here !== d.size) missing.push(d.digest);
    }
    if (missing.length) throw new BlockportError('EMISSING', `${label}: ${t.name} needs ${missing.length} blob(s) neither in the bundle nor in the store: ${missing.slice(0, 3).join(', ')}`, { subject: missing[0] });
    await resolveImage(t.descriptor, read, `${label}: ${t.name}`);
  }
  for (const r of m.referrers ?? []) {
    const what = `${label}: referrer ${r.tag ?? r.descriptor.digest} of ${r.target}`;
    for (const d of await reachable(r.descriptor, read, what)) {
      const here = (await sizeOf(join(staging, digestHex(d.digest)))) ?? (await layout.blobs.size(d.digest));
      if (here !== d.size) throw new BlockportError('EMISSING', `${what}: blob ${d.digest} is neither in the bundle nor in the store`, { subject: d.digest });
    }
  }
}

/** Moves verified blobs from staging into blobs/ (same file system: renames, each atomic). */
async function promote(m: BundleManifest, layout: OciLayout, staging: string, corrupt: ReadonlySet<Digest>): Promise<void> {
  await fsp.mkdir(layout.blobs.dir, { recursive: true });
  for (const b of m.blobs) {
    const staged = join(staging, digestHex(b.digest));
    if ((await sizeOf(staged)) !== b.size) continue;
    // a corrupt copy is replaced (rename over it is atomic); a whole one another writer added stays
    if (!corrupt.has(b.digest) && (await layout.blobs.size(b.digest)) === b.size) await fsp.rm(staged, { force: true });
    else await fsp.rename(staged, layout.blobs.path(b.digest));
  }
  await fsyncDir(layout.blobs.dir);
}

/**
 * A target as the store will hold it once the staged blobs move in: blobs are read from staging
 * when this apply staged them, else from the store.
 */
export class StagedImageReader extends LayoutImageReader {
  constructor(
    ref: string,
    layout: OciLayout,
    resolved: ResolvedImage,
    private readonly staging: string,
    private readonly staged: ReadonlySet<Digest>,
  ) {
    super(ref, layout, resolved);
  }

  private stagedPath(d: Descriptor): string | undefined {
    return this.staged.has(d.digest) ? join(this.staging, digestHex(d.digest)) : undefined;
  }

  protected override async openStored(desc: Descriptor): Promise<Readable> {
    const p = this.stagedPath(desc);
    return p ? openFile(p).pipe(new VerifyingStream(desc.digest, desc.size, p)) : super.openStored(desc);
  }

  override async readBlob(desc: Descriptor): Promise<Buffer> {
    return this.stagedPath(desc) ? readSmall(await this.openStored(desc), `blob ${desc.digest}`) : super.readBlob(desc);
  }

  override async locate(desc: Descriptor): Promise<FileSpot | undefined> {
    const p = this.stagedPath(desc);
    return p ? { path: p, offset: 0, size: desc.size, blobFile: true } : super.locate(desc);
  }
}

/**
 * Checks that each target's block-form layers splice into their diff_ids, reading the staged
 * blobs where they are (nothing enters blobs/ before this passed). Returns the layers checked,
 * for the caller to record once the blobs are in: materialize then copies them unhashed.
 */
async function checkSplices(m: BundleManifest, layout: OciLayout, verified: VerifiedLayers, staging: string, label: string, opts: ApplyOptions): Promise<SpliceCheck> {
  const staged = new Set<Digest>();
  for (const b of m.blobs) if ((await sizeOf(join(staging, digestHex(b.digest)))) === b.size) staged.add(b.digest);
  const read = stagedOrStored(layout, staging);
  const images = [];
  for (const t of m.targets) {
    const ref = `${label}: ${t.name}`;
    images.push(new StagedImageReader(ref, layout, await resolveImage(t.descriptor, read, ref), staging, staged));
  }
  // layers already recorded are skipped, so the bar may end short of its total
  const total = images.flatMap((i) => i.manifest.layers).filter((l) => isBlockLayer(l.mediaType)).reduce((n, l) => n + Number(l.annotations?.[Annotation.layerSize] ?? 0), 0);
  const sum: SpliceCheck = { layers: 0, bytes: 0, matched: [] };
  let done = 0;
  for (const [k, image] of images.entries()) {
    const onBytes = (n: number) => opts.onProgress?.({ done: (done += n), total: Math.max(total, done), label: `checking ${m.targets[k].name}` });
    // two targets may share a layer: checked once
    const r = await verifySplices(image, verified, { onBytes, checked: new Set(sum.matched.map((x) => x.layer)) });
    sum.layers += r.layers;
    sum.bytes += r.bytes;
    sum.matched.push(...r.matched);
  }
  return sum;
}

/**
 * Lists the referrers beside their targets, before the targets' tags move: a cosign one as
 * `REPO:sha256-<hex>.sig` (REPO the target's), an OCI 1.1 one untagged with its subject.
 */
async function listReferrers(m: BundleManifest, layout: OciLayout): Promise<number> {
  const held = (await layout.readIndex()).manifests;
  for (const r of m.referrers ?? []) {
    const tag = r.tag && `${r.target.slice(0, r.target.lastIndexOf(':'))}:${r.tag}`;
    if (!tag) await layout.addReferrer(r.descriptor, r.subject);
    else if (!held.some((d) => d.digest === r.descriptor.digest && d.annotations?.[Annotation.refName] === tag)) await layout.tag(r.descriptor, tag);
  }
  return m.referrers?.length ?? 0;
}

async function tagTargets(m: BundleManifest, layout: OciLayout): Promise<ApplyResult['targets']> {
  await layout.init();
  const index = await layout.readIndex();
  const out: ApplyResult['targets'] = [];
  for (const t of m.targets) {
    const previous = index.manifests.find((d) => d.annotations?.[Annotation.refName] === t.name)?.digest;
    const changed = previous !== t.descriptor.digest;
    if (changed) await layout.tag(t.descriptor, t.name);
    out.push({ name: t.name, digest: t.descriptor.digest, previous, changed });
  }
  return out;
}


/**
 * Applies a bundle to the store at `home` under the store lock: checks the signature (when keys
 * are trusted) and the prerequisites before writing anything, stages and verifies every blob the
 * store lacks, checks each target is complete and that its block-form layers splice into their
 * diff_ids (reading the staged blobs), then moves the blobs in and tags the targets last.
 * On any error the staging folder is removed and the store's visible state is unchanged; a killed
 * run leaves verified staged blobs that the next run of the same bundle keeps.
 */
export async function applyBundle(files: string[], home: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const store = new Store(home);
  const lock = await store.lock();
  let staging: string | undefined;
  try {
    // the lock removed what killed writers left in the store (see Store.lock)
    const { layout, verified } = store;
    // a delta's base is a prerequisite, so it is in blobs/ (checked below, before anything is read)
    const b = await openBundle(files, { basePath: (d) => layout.blobs.path(d) });
    const label = b.files.length > 1 ? `${b.files[0]} (+${b.files.length - 1} volumes)` : b.files[0];
    const signature = checkSignature(b, await trustedKeys(opts.trust, home), label);
    const releases = new Releases(home);
    const older = downgrades(b.manifest, await releases.read());
    if (older.length && !opts.allowDowngrade) refuseDowngrade(older, label);
    await checkPrerequisites(b.manifest, layout, label);
    // the layout files first: a store that fills up later still is a layout (blobs without a tag, for gc)
    await layout.init();
    staging = store.stagingDir(b.digest);
    const present = await checkPresent(b.manifest, layout);
    const counts = { total: b.manifest.blobs.length, received: 0, present: 0, resumed: 0, healed: present.corrupt.size };
    let bytesWritten = 0;
    if (present.good.size === counts.total) counts.present = counts.total;
    else bytesWritten = await receive(b, present.good, staging, opts, counts);
    await checkComplete(b.manifest, layout, staging, label);
    const splices = await checkSplices(b.manifest, layout, verified, staging, label, opts);
    await promote(b.manifest, layout, staging, present.corrupt);
    for (const x of splices.matched) await verified.record(x.layer, x.diffId);
    await layout.init();
    const referrers = await listReferrers(b.manifest, layout);
    const targets = await tagTargets(b.manifest, layout);
    await releases.record(b.manifest, b.digest);
    await fsp.rm(staging, { recursive: true, force: true });
    await fsp.rmdir(join(home, 'staging')).catch(() => {}); // only when empty
    const noop = counts.received === 0 && counts.resumed === 0 && targets.every((t) => !t.changed);
    const downgraded = older.map((d) => d.name);
    return { bundle: b.digest, files: b.files, signature, targets, blobs: counts, bytesWritten, bytesChecked: present.bytes, downgraded, splices, referrers, noop };
  } catch (err) {
    await store.verified.dropPending();
    if (staging) await fsp.rm(staging, { recursive: true, force: true }).catch(() => {});
    await fsp.rmdir(join(home, 'staging')).catch(() => {});
    throw fromSystemError(err, home);
  } finally {
    await lock.release();
  }
}
