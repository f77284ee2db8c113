import { BlockportError } from '../errors.js';
import { copyImage, type TransferStats } from '../oci/copy-image.js';
import { formatRef, openImage, openWriter, parseRef } from '../oci/transport.js';
import { Store, storeHome } from '../store/store.js';
import { carryReferrers, pendingReferrers } from '../referrers/carry.js';
import type { ReferrerTally } from '../referrers/copy.js';
import { LayoutReferrerSink } from '../referrers/layout-referrers.js';
import type { Descriptor } from '../oci/types.js';
import { configureRegistries } from './client.js';
import { pullImage, requireBlockForm, type PullResult } from './pull.js';
import { openRemoteWriter, type RemoteImageWriter } from './remote-image.js';

/** Flags every registry command takes. */
export interface TransferFlags {
  creds?: string;
  tlsVerify?: string | boolean;
  jobs?: string;
  mountFrom?: string[];
  /** false: leave the image's signatures, SBOMs and attestations behind (default: they go with it). */
  referrers?: boolean;
}

export interface TransferResult {
  source: string;
  destination: string;
  top: Descriptor;
  stats: TransferStats;
  /** Blobs the registry linked from another repository instead of receiving them (push, copy to a registry). */
  mounted?: number;
  /** Blobs and manifests whose bytes were sent to a registry (push, copy to a registry). */
  uploaded?: { blobs: number; bytes: number };
  /** The signatures, SBOMs and attestations written beside the image. */
  referrers?: ReferrerTally;
}

function jobs(v: string | undefined): number {
  if (v === undefined) return 4;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new BlockportError('EUSAGE', `--jobs wants a whole number from 1 to 64, not ${JSON.stringify(v)}`);
  return n;
}

/** Applies --creds and --tls-verify to every registry this process speaks to. */
export function configure(flags: TransferFlags): void {
  const tls = flags.tlsVerify;
  if (tls !== undefined && tls !== true && tls !== 'true' && tls !== false && tls !== 'false') throw new BlockportError('EUSAGE', `--tls-verify wants true or false, not ${JSON.stringify(tls)}`);
  configureRegistries({ creds: flags.creds, tlsVerify: tls === undefined ? undefined : tls === true || tls === 'true' });
}

function requireTransport(ref: string, transport: 'docker' | 'store', what: string): void {
  if (parseRef(ref).transport !== transport) {
    throw new BlockportError('EUSAGE', `${what} must be ${transport === 'docker' ? 'a docker://HOST/REPO:TAG reference' : 'a store NAME:TAG'}, not ${ref}`);
  }
}

function sent(w: RemoteImageWriter): { blobs: number; bytes: number } {
  return { blobs: w.stats.uploaded + w.stats.manifests, bytes: w.stats.uploadedBytes + w.stats.manifestBytes };
}

type Progress = (p: { bytes: number; total: number }) => void;

/** `push`: a block-form image (from the store or anywhere) into a registry, blobs it has skipped. */
export async function push(src: string, dst: string, flags: TransferFlags, onProgress?: Progress): Promise<TransferResult> {
  requireTransport(dst, 'docker', 'the destination');
  configure(flags);
  // the whole graph moves: any platform of an index serves as the reader's own
  const reader = await openImage(src, undefined, { platform: 'any' });
  try {
    requireBlockForm(reader, 'push');
    const pending = flags.referrers === false ? undefined : await pendingReferrers(reader);
    const writer = (await openRemoteWriter(dst, { mountFrom: flags.mountFrom, concurrency: jobs(flags.jobs) })) as RemoteImageWriter;
    const r = await copyImage(reader, writer, { concurrency: jobs(flags.jobs), onProgress });
    const referrers = await carryReferrers(pending, writer);
    return { source: src, destination: dst, top: r.top, stats: r.stats, mounted: writer.stats.mounted, uploaded: sent(writer), ...(referrers ? { referrers } : {}) };
  } finally {
    await reader.close();
  }
}

/** `pull`: a block-form image from a registry into the store, fetching only what the store lacks. */
export async function pull(src: string, dst: string, flags: TransferFlags, onProgress?: Progress): Promise<TransferResult & { previous?: string; resumed: PullResult['stats']['resumed']; splicesChecked: number }> {
  requireTransport(src, 'docker', 'the source');
  requireTransport(dst, 'store', 'the destination');
  configure(flags);
  const target = parseRef(dst) as unknown as { transport: 'store'; name: string };
  // the whole graph moves: any platform of an index serves as the reader's own
  const reader = await openImage(src, undefined, { platform: 'any' });
  try {
    const pending = flags.referrers === false ? undefined : await pendingReferrers(reader);
    const r = await pullImage(reader, storeHome(), target.name, { concurrency: jobs(flags.jobs), onProgress });
    const referrers = await carryReferrers(pending, new LayoutReferrerSink(new Store(storeHome()).layout, target.name.slice(0, target.name.lastIndexOf(':'))));
    return { source: src, destination: dst, top: r.top, stats: r.stats, previous: r.previous, resumed: r.stats.resumed, splicesChecked: r.splices.layers, ...(referrers ? { referrers } : {}) };
  } finally {
    await reader.close();
  }
}

/** `copy`: any image, any transport to any, as it is (same top digest, block form or not). */
export async function copy(src: string, dst: string, flags: TransferFlags, onProgress?: Progress): Promise<TransferResult> {
  configure(flags);
  const target = parseRef(dst);
  if (target.transport === 'docker-archive') {
    throw new BlockportError('EUNSUPPORTED', `${dst}: copy keeps the image as it is, and a docker-archive holds standard images only; use 'blockport materialize'`);
  }
  // the whole graph moves: any platform of an index serves as the reader's own
  const reader = await openImage(src, undefined, { platform: 'any' });
  try {
    const pending = flags.referrers === false ? undefined : await pendingReferrers(reader);
    const writer = target.transport === 'docker' ? await openRemoteWriter(formatRef(target), { mountFrom: flags.mountFrom, concurrency: jobs(flags.jobs) }) : await openWriter(target, dst);
    const r = await copyImage(reader, writer, { concurrency: jobs(flags.jobs), onProgress });
    const referrers = await carryReferrers(pending, writer);
    const remote = target.transport === 'docker' ? (writer as RemoteImageWriter) : undefined;
    return { source: src, destination: dst, top: r.top, stats: r.stats, ...(remote ? { mounted: remote.stats.mounted, uploaded: sent(remote) } : {}), ...(referrers ? { referrers } : {}) };
  } finally {
    await reader.close();
  }
}
