/**
 * Crash consistency, as a power cut or `kill -9` would test it: runs a real blockport command as
 * a child process, kills it (SIGKILL) at a random moment of its usual run time, then checks that
 * `blockport fsck` finds at most leftovers a re-run resumes or removes (temp files of the dead
 * process, a staging folder), that the re-run succeeds, and that its result is the right one.
 * Used by test/crash.test.ts (a few runs) and bench/crash.ts (many).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { CLI, NODE_FLAGS, blockport } from './cli.js';

/** One command to interrupt: where its store is, how to run it, and how to tell its result is right. */
export interface CrashCase {
  name: string;
  /** A fresh starting point for run `i`; returns the store (BLOCKPORT_HOME) and the arguments. */
  prepare(i: number): Promise<{ home: string; args: string[] }>;
  /** The arguments of the re-run after a kill (default: the same). */
  rerun?(args: string[]): string[];
  /** Checks the re-run's outcome (digests of what it made). */
  check(home: string, i: number): Promise<void>;
}

export interface CrashStats {
  name: string;
  runs: number;
  /** Runs killed before the command finished (the others finished first: nothing to resume). */
  killed: number;
  /** Leftovers fsck reported after a kill, by kind. */
  leftovers: Record<string, number>;
  /** The usual run time the kill moments were drawn from (ms). */
  durationMs: number;
}

/** Leftovers of an interrupted write that a re-run or `fsck --repair` takes care of. */
const RESUMABLE = new Set(['temp', 'staging']);

/** A small seeded PRNG (mulberry32): a failing run can be replayed with its seed. */
export function random(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs the CLI and kills it with SIGKILL after `ms`; resolves true when it was killed. */
export function killAfter(home: string, args: string[], ms: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, CLI, ...args], { env: { ...process.env, BLOCKPORT_HOME: home }, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      resolve(signal === 'SIGKILL');
    });
  });
}

/** fsck after a kill: nothing but resumable leftovers. Returns their kinds. */
async function leftovers(home: string, what: string): Promise<string[]> {
  const r = await blockport(['fsck', '--json'], { BLOCKPORT_HOME: home });
  if (r.code === 3) return []; // the kill came before the store existed
  const report = JSON.parse(r.stdout);
  const kinds = report.problems.map((p: { kind: string }) => p.kind);
  const bad = report.problems.filter((p: { kind: string }) => !RESUMABLE.has(p.kind));
  assert.deepEqual(bad, [], `${what}: fsck after the kill: ${JSON.stringify(bad)}`);
  return kinds;
}

/**
 * Runs `c` `runs` times: each run is killed at a random moment within its usual duration (measured
 * once, uninterrupted, on run -1), fsck'd, re-run to success and checked.
 */
export async function crashRuns(c: CrashCase, runs: number, seed = Date.now() & 0xffff): Promise<CrashStats> {
  const rand = random(seed);
  const timing = await c.prepare(-1);
  const start = Date.now();
  const first = await blockport(timing.args, { BLOCKPORT_HOME: timing.home });
  assert.equal(first.code, 0, `${c.name}: ${first.stderr}`);
  const durationMs = Date.now() - start;
  const stats: CrashStats = { name: c.name, runs, killed: 0, leftovers: {}, durationMs };
  for (let i = 0; i < runs; i++) {
    const { home, args } = await c.prepare(i);
    // node's own start-up is part of the duration: a kill then may come before any work
    const at = Math.floor(rand() * durationMs * 1.1);
    const what = `${c.name} run ${i} (seed ${seed}, killed at ${at} ms of ${durationMs})`;
    if (await killAfter(home, args, at)) stats.killed++;
    for (const k of await leftovers(home, what)) stats.leftovers[k] = (stats.leftovers[k] ?? 0) + 1;
    const again = await blockport(c.rerun?.(args) ?? args, { BLOCKPORT_HOME: home });
    assert.equal(again.code, 0, `${what}: the re-run failed: ${again.stderr}`);
    const after = await blockport(['fsck', '--json'], { BLOCKPORT_HOME: home });
    assert.equal(after.code, 0, `${what}: fsck after the re-run: ${after.stdout}${after.stderr}`);
    await c.check(home, i);
  }
  return stats;
}
