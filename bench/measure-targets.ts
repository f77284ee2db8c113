// The results of one benchmark run, and the targets they are judged against.
import type { Sized } from './measure-bytes.js';
import type { BlockportRun } from './measure-blockport.js';
import type { ToolRun } from './measure-compare.js';
import type { PerFileResult } from './measure-files.js';
import type { ProfileSummary } from './measure-profile.js';
import type { ReceiverRow } from './measure-receiver.js';

/** The bytes a receiver gets for one upgrade under each strategy. */
export interface UpgradeBytes {
  name: string;
  from: string;
  to: string;
  fullGzip: Sized;
  fullZstd: Sized;
  layerLevel: { bytes: number; layers: number; of: number };
  perFile: PerFileResult;
  bundle: number;
  /** null when `bundle --delta` is not available. */
  bundleDelta: number | null;
  patchFrom: Sized;
}

/** Times of the commands on the timed image (java-xl), and of the tools they are compared with. */
export interface Timings {
  /** The image blockify, materialize, skopeo, GNU tar and cp ran on. */
  tag: string;
  /** Uncompressed layer bytes (the sum of the layer tars). */
  layerBytes: number;
  blockify: BlockportRun;
  /** The same image from an OCI layout, and with other compressions of the rewritten layers. */
  blockifyVariants: BlockportRun[];
  /** bundle and apply of the timed upgrade (java v1->v3; its name is their `subject`). */
  bundle: BlockportRun;
  bundleDelta: BlockportRun | null;
  apply: BlockportRun;
  materialize: BlockportRun;
  skopeo: ToolRun;
  gnuTar: ToolRun;
  cp: ToolRun;
  /** cp, then sync of the copy: as durable as materialize's fsynced output. */
  cpSync: ToolRun;
  /** Size of the materialized docker-archive. */
  archiveBytes: number;
  profiles: { blockify: ProfileSummary; materialize: ProfileSummary };
}

/** What a run measured and where. */
export interface Results {
  date: string;
  machine: Record<string, string>;
  /** Wall-clock seconds of the whole run. */
  seconds: number;
  upgrades: UpgradeBytes[];
  timings: Timings;
  /** The receiver's side per scenario image (absent in runs made before it was measured). */
  receiver?: ReceiverRow[];
  /** Every blockport command of the run. */
  runs: BlockportRun[];
  /** How many sizes came from the size cache (same input bytes, same tool version). */
  cachedSizes: number;
  targets: Target[];
}

/** One target of the issue, judged. */
export interface Target {
  name: string;
  /** null: could not be measured in this run. */
  pass: boolean | null;
  value: string;
}

/** Wall-time ratio of `slow` over `fast`, e.g. "3.4x". */
export function ratio(slow: number, fast: number): string {
  return `${(slow / fast).toFixed(slow / fast >= 10 ? 0 : 1)}x`;
}

/** "3.4x faster" or, when `ours` took longer, "1.2x slower". */
export function faster(theirs: number, ours: number): string {
  return theirs >= ours ? `${ratio(theirs, ours)} faster` : `${ratio(ours, theirs)} slower`;
}

function mb(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`;
}

/** Peak RSS limit of the issue: 150 MB (10^6 bytes). */
const RSS_LIMIT_KIB = 150e6 / 1024;

function deltaTarget(u: UpgradeBytes | undefined, label: string): Target {
  const name = `${label}: bundle --delta within 2x of the --patch-from lower bound`;
  if (!u || u.bundleDelta === null) return { name, pass: null, value: 'n/a (bundle --delta not available)' };
  return { name, pass: u.bundleDelta <= 2 * u.patchFrom.bytes, value: `${mb(u.bundleDelta)} vs ${mb(u.patchFrom.bytes)} (${(u.bundleDelta / u.patchFrom.bytes).toFixed(2)}x)` };
}

function bundleVsPerFile(u: UpgradeBytes | undefined, label: string): Target {
  const name = `${label}: bundle smaller than per-file dedup`;
  if (!u) return { name, pass: null, value: 'n/a (scenario not built)' };
  return { name, pass: u.bundle < u.perFile.bytes, value: `${mb(u.bundle)} vs ${mb(u.perFile.bytes)} (${(u.bundle / u.perFile.bytes).toFixed(2)}x)` };
}

/** Judges the results against the targets. */
export function judge(upgrades: UpgradeBytes[], t: Timings, runs: BlockportRun[], receiver: ReceiverRow[] = []): Target[] {
  const find = (from: string, to: string) => upgrades.find((u) => u.from === from && u.to === to);
  const v2 = find('java-v1', 'java-v2');
  const v3 = find('java-v1', 'java-v3');
  const teams = find('java-v1', 'teams-v1');
  const worst = runs.reduce((a, b) => (b.peakRssKiB > a.peakRssKiB ? b : a));
  const mbps = t.layerBytes / 1e6 / t.blockify.seconds;
  return [
    v2
      ? { name: 'java v1->v2: bundle at least 50x smaller than the layer-level delta', pass: v2.layerLevel.bytes >= 50 * v2.bundle, value: `${mb(v2.bundle)} vs ${mb(v2.layerLevel.bytes)} (${ratio(v2.layerLevel.bytes, v2.bundle)} smaller)` }
      : { name: 'java v1->v2: bundle at least 50x smaller than the layer-level delta', pass: null, value: 'n/a' },
    deltaTarget(v2, 'java v1->v2'),
    bundleVsPerFile(v3, 'java v1->v3'),
    deltaTarget(v3, 'java v1->v3'),
    bundleVsPerFile(teams, 'teams (java v1 -> teams v1)'),
    deltaTarget(teams, 'teams (java v1 -> teams v1)'),
    { name: `materialize ${t.tag} (${mb(t.archiveBytes)}) to docker-archive: at least 3x faster than skopeo copy`, pass: t.skopeo.seconds >= 3 * t.materialize.seconds, value: `${t.materialize.seconds.toFixed(2)} s vs ${t.skopeo.seconds.toFixed(2)} s (${ratio(t.skopeo.seconds, t.materialize.seconds)})` },
    {
      name: `materialize ${t.tag} within 1.5x of cp of the output (cp + sync: materialize fsyncs its output)`,
      pass: t.materialize.seconds <= 1.5 * t.cpSync.seconds,
      value: `${t.materialize.seconds.toFixed(2)} s vs ${t.cpSync.seconds.toFixed(2)} s (${(t.materialize.seconds / t.cpSync.seconds).toFixed(2)}x); plain cp without sync ${t.cp.seconds.toFixed(2)} s (${(t.materialize.seconds / t.cp.seconds).toFixed(1)}x)`,
    },
    { name: 'blockify at 200 MB/s or more of uncompressed layer data', pass: mbps >= 200, value: `${mbps.toFixed(0)} MB/s (${t.tag}, ${mb(t.layerBytes)} in ${t.blockify.seconds.toFixed(2)} s)` },
    receiverTarget(receiver),
    { name: 'peak RSS under 150 MB for every command on every scenario', pass: worst.peakRssKiB < RSS_LIMIT_KIB, value: `worst ${((worst.peakRssKiB * 1024) / 1e6).toFixed(0)} MB (${worst.step} ${worst.subject}); ${runs.filter((r) => r.peakRssKiB >= RSS_LIMIT_KIB).length} of ${runs.length} commands at or over` },
  ];
}

/** The receiver target: materialize within 1.3x of cp + sync on every scenario image. */
function receiverTarget(rows: ReceiverRow[]): Target {
  const name = 'materialize within 1.3x of cp + sync on every scenario (after a first materialize)';
  if (rows.length === 0) return { name, pass: null, value: 'n/a (not measured)' };
  const r = (x: ReceiverRow) => x.materialize.seconds / x.cpSync.seconds;
  return { name, pass: rows.every((x) => r(x) <= 1.3), value: rows.map((x) => `${x.tag} ${r(x).toFixed(2)}x`).join(', ') };
}

/** PASS/FAIL lines, one per target, with the measured value. */
export function formatTargets(targets: Target[]): string[] {
  return targets.map((t) => `${t.pass === null ? 'N/A ' : t.pass ? 'PASS' : 'FAIL'}  ${t.name}: ${t.value}`);
}
