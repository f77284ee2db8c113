// Where a blockport command spends its time: runs it under `node --cpu-prof` and sums the
// profile's self time per function. Work in libuv's thread pool (zlib, fs) shows as "(idle)" on
// the main thread.
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { timed, type Command } from './measure-exec.js';

/** The heaviest functions of one profiled run. */
export interface ProfileSummary {
  seconds: number;
  /** Main-thread milliseconds the profile covers. */
  sampledMs: number;
  top: { fn: string; ms: number; share: number }[];
  /** The same self time summed per script file ("header.js", "hash"; "(native)" for V8 and C++). */
  modules: { fn: string; ms: number; share: number }[];
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function ("name file:line"), or per file with `perFile`, in milliseconds, heaviest first. */
export function selfTimes(p: CpuProfile, perFile = false): [string, number][] {
  const byId = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const sums = new Map<string, number>();
  p.samples.forEach((id, i) => {
    const f = byId.get(id);
    if (!f) return;
    const file = f.url.split('/').pop() ?? '';
    const fn = file ? `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}` : f.functionName;
    const key = perFile ? file || (f.functionName.startsWith('(') ? f.functionName : '(native)') : fn;
    sums.set(key, (sums.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  });
  return [...sums].sort((a, b) => b[1] - a[1]);
}

/** Runs a `node CLI ...` command with --cpu-prof and summarizes its `n` heaviest functions. */
export async function profile(c: Command, n = 8): Promise<ProfileSummary> {
  if (c.cmd !== process.execPath) throw new Error('profile: only node commands can be profiled');
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-prof-'));
  try {
    const t = await timed({ ...c, args: ['--cpu-prof', `--cpu-prof-dir=${dir}`, ...c.args] });
    const [file] = (await fsp.readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
    const p = JSON.parse(await fsp.readFile(join(dir, file), 'utf8')) as CpuProfile;
    const times = selfTimes(p);
    const total = times.reduce((s, [, ms]) => s + ms, 0);
    const rows = (l: [string, number][]) => l.slice(0, n).map(([fn, ms]) => ({ fn, ms: Math.round(ms), share: ms / total }));
    return { seconds: t.seconds, sampledMs: Math.round(total), top: rows(times), modules: rows(selfTimes(p, true)) };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
