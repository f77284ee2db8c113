// Running the measured commands: wall time and peak RSS through GNU time, byte counts of a
// command's output, and a cache of sizes that depend only on fixed inputs and a tool's version.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** One measured run of a command. */
export interface Timing {
  /** Wall-clock seconds (GNU time's %e). */
  seconds: number;
  /** Peak resident set size in KiB (GNU time's %M): the largest process of the run. */
  peakRssKiB: number;
}

/** A command as it is run and shown in the report. */
export interface Command {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

/** The command line as a reader can paste it (environment first, arguments quoted when needed). */
export function showCommand(c: Command): string {
  const env = Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${quote(String(v))}`);
  return [...env, c.cmd, ...c.args].map((s, i) => (i < env.length ? s : quote(s))).join(' ');
}

function quote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs `c` under `/usr/bin/time -f '%e %M'`; rejects with the tail of stderr when it fails. */
export async function timed(c: Command): Promise<Timing & { stdout: string }> {
  const out = join(await fsp.mkdtemp(join(tmpdir(), 'blockport-time-')), 'time');
  try {
    const stdout = await spawnText('/usr/bin/time', ['-o', out, '-f', '%e %M', c.cmd, ...c.args], c.env);
    const [e, m] = (await fsp.readFile(out, 'utf8')).trim().split('\n').pop()!.split(' ');
    return { seconds: Number(e), peakRssKiB: Number(m), stdout };
  } finally {
    await fsp.rm(dirname(out), { recursive: true, force: true });
  }
}

/** Best (shortest) of `n` runs of `c`, `reset` before each; the peak RSS is the largest seen. */
export async function bestOf(n: number, c: Command, reset?: () => Promise<unknown>): Promise<Timing & { stdout: string; runs: number[] }> {
  let best: (Timing & { stdout: string }) | undefined;
  const runs: number[] = [];
  let rss = 0;
  for (let i = 0; i < n; i++) {
    await reset?.();
    const t = await timed(c);
    runs.push(t.seconds);
    rss = Math.max(rss, t.peakRssKiB);
    if (!best || t.seconds < best.seconds) best = t;
  }
  return { ...best!, peakRssKiB: rss, runs };
}

/**
 * Best of `n` runs of each command, taking turns (a, b, a, b, ...), `reset` and `settle` before
 * each run: on a shared machine the disk's write speed drifts by 1.5x within minutes, and commands
 * compared as a ratio should meet the same disk.
 */
export async function bestInTurns(n: number, cmds: { c: Command; reset?: () => Promise<unknown> }[]): Promise<(Timing & { runs: number[] })[]> {
  const out = cmds.map(() => ({ seconds: Infinity, peakRssKiB: 0, runs: [] as number[] }));
  for (let i = 0; i < n; i++) {
    for (const [k, { c, reset }] of cmds.entries()) {
      await reset?.();
      await settle();
      const t = await timed(c);
      const o = out[k];
      o.runs.push(t.seconds);
      o.seconds = Math.min(o.seconds, t.seconds);
      o.peakRssKiB = Math.max(o.peakRssKiB, t.peakRssKiB);
    }
  }
  return out;
}

/** Runs a command and resolves to its stdout as text (capped at 64 MiB). */
export function spawnText(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const parts: Buffer[] = [];
    let len = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      if (len < 64 << 20) parts.push(b);
      len += b.length;
    });
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString('utf8')).slice(-4096)));
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(parts).toString('utf8'));
      else reject(new Error(`${[cmd, ...args].join(' ').slice(0, 300)}: exit ${code}: ${err.trim().split('\n').slice(-4).join(' | ')}`));
    });
  });
}

/** Runs a command and resolves to the number of bytes it wrote to stdout (nothing is kept). */
export function countOutput(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let n = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => (n += b.length));
    child.stderr.on('data', (b: Buffer) => (err = (err + b.toString('utf8')).slice(-4096)));
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(n) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

/** sha256 of a file, streamed in 1 MiB reads. */
export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Waits until the disk has written what earlier steps left dirty (`sync`), so that a timed command
 * does not pay for their writes: untimed, before each timed run that writes a lot.
 */
export async function settle(): Promise<void> {
  await spawnText('sync', []);
}

/** Reads every byte of the files, so that the next timed command finds them in the page cache. */
export async function warm(files: readonly string[]): Promise<void> {
  for (const f of files) {
    for await (const _ of createReadStream(f, { highWaterMark: 1 << 20 })) { /* read */ }
  }
}

/**
 * Output sizes of deterministic compressions (gzip, zstd -19, --patch-from) keyed by the command,
 * the tool's version and the sha256 of every input file: the same bytes in give the same size out,
 * so a rerun on unchanged images need not spend half an hour recompressing them.
 */
export class SizeCache {
  private entries: Record<string, { bytes: number; seconds: number; at: string }> = {};
  /** Keys answered from the cache in this run. */
  readonly hits = new Set<string>();

  private constructor(private readonly file: string, private readonly fresh: boolean) {}

  /** Loads `file` (a missing file is an empty cache); `fresh` ignores what it holds. */
  static async load(file: string, fresh: boolean): Promise<SizeCache> {
    const c = new SizeCache(file, fresh);
    const text = await fsp.readFile(file, 'utf8').catch(() => undefined);
    if (text !== undefined) c.entries = JSON.parse(text) as SizeCache['entries'];
    return c;
  }

  /** The cached size for `key`, or measures it with `run` and remembers it. */
  async get(key: string, run: () => Promise<number>): Promise<{ bytes: number; seconds: number; cached: boolean }> {
    const hit = this.fresh ? undefined : this.entries[key];
    if (hit) {
      this.hits.add(key);
      return { bytes: hit.bytes, seconds: hit.seconds, cached: true };
    }
    const t0 = process.hrtime.bigint();
    const bytes = await run();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    this.entries[key] = { bytes, seconds, at: new Date().toISOString() };
    await this.save();
    return { bytes, seconds, cached: false };
  }

  private async save(): Promise<void> {
    await fsp.mkdir(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(this.entries, null, 1) + '\n');
    await fsp.rename(tmp, this.file);
  }
}
