// Runs the blockport CLI the way a vendor and its customers do, timing every command and recording
// its peak RSS: blockify into a vendor store, bundle each upgrade (with and without --delta), apply
// the bundles in customer stores, materialize the results to docker-archives.
import { promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bestOf, settle, showCommand, warm, type Command, type Timing } from './measure-exec.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** The node flags the installed `blockport` command runs with: those on the CLI's `#!` line. */
export function cliNodeFlags(cli = CLI): string[] {
  const first = readFileSync(cli, 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node((?:\s+--[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  return m ? m[1].trim().split(/\s+/).filter(Boolean) : [];
}

/** One blockport command as run, with what it cost. */
export interface BlockportRun extends Timing {
  /** blockify, bundle, bundle --delta, apply, materialize. */
  step: string;
  /** What it worked on: an image tag or an upgrade name. */
  subject: string;
  command: string;
  /** Every repetition's seconds (best of several for the short commands). */
  runs: number[];
}

/** A store-bound runner of the CLI that keeps a log of every command. */
export class Blockport {
  readonly log: BlockportRun[] = [];

  constructor(readonly work: string) {}

  /** The command line of `blockport ARGS` against the store `home`. */
  command(home: string, args: string[]): Command {
    return { cmd: process.execPath, args: [...cliNodeFlags(), CLI, ...args], env: { BLOCKPORT_HOME: join(this.work, home) } };
  }

  /** Runs `blockport ARGS` against the store `home` (`repeat` times, keeping the best). */
  async run(home: string, step: string, subject: string, args: string[], repeat = 1, reset?: () => Promise<unknown>): Promise<BlockportRun> {
    const c = this.command(home, args);
    return this.record(step, subject, c, await bestOf(repeat, c, reset));
  }

  /** Logs a run of `c` timed elsewhere (see bestInTurns). */
  record(step: string, subject: string, c: Command, t: Timing & { runs: number[] }): BlockportRun {
    const run: BlockportRun = { step, subject, command: showCommand(c).replace(`${[process.execPath, ...cliNodeFlags(), CLI].join(' ')}`, 'blockport'), seconds: t.seconds, peakRssKiB: t.peakRssKiB, runs: t.runs };
    this.log.push(run);
    return run;
  }

  /** The command `bundle --help` lists --delta: a sender can ship binary deltas. */
  async hasDelta(): Promise<boolean> {
    const { stdout } = await bestOf(1, this.command('vendor', ['bundle', '--help']));
    return /--delta\b/.test(stdout);
  }
}

/** The image a scenario tag names in a store (`java-v3` -> `java:v3`). */
export function storeName(tag: string): string {
  const i = tag.lastIndexOf('-');
  return `${tag.slice(0, i)}:${tag.slice(i + 1)}`;
}

/**
 * Blockifies a docker-archive into the store `home` with the scenario's preset. With `repeat`,
 * best of that many runs, each into an empty store after the disk has written everything before.
 */
export async function blockify(bp: Blockport, archive: string, tag: string, preset: string, home = 'vendor', repeat = 1): Promise<BlockportRun> {
  await warm([archive]);
  const fresh = async () => {
    await fsp.rm(join(bp.work, home), { recursive: true, force: true });
    await settle();
  };
  return bp.run(home, 'blockify', tag, ['blockify', `docker-archive:${archive}`, storeName(tag), '--preset', preset], repeat, repeat > 1 ? fresh : undefined);
}

/** Bundles `to` for a receiver holding `from`; resolves to the run and the bundle's size. */
export async function bundle(bp: Blockport, from: string | undefined, to: string, out: string, opts: { delta?: boolean; repeat?: number; subject: string }): Promise<BlockportRun & { bytes: number }> {
  const args = ['bundle', '--to', storeName(to), ...(from ? ['--since', storeName(from)] : []), '-o', out, ...(opts.delta ? ['--delta'] : [])];
  const run = await bp.run('vendor', opts.delta ? 'bundle --delta' : 'bundle', opts.subject, args, opts.repeat);
  return { ...run, bytes: (await fsp.stat(out)).size };
}

/** Applies a bundle in a customer store (once: a second apply of the same bundle is a no-op). */
export async function apply(bp: Blockport, home: string, file: string, subject: string): Promise<BlockportRun> {
  await warm([file]);
  return bp.run(home, 'apply', subject, ['apply', file]);
}

/** `blockport materialize` of a store image to a docker-archive. */
export function materializeArgs(tag: string, out: string): string[] {
  return ['materialize', storeName(tag), `docker-archive:${out}:${storeName(tag)}`];
}

/** Materializes a store image to a docker-archive (`repeat` times, keeping the best). */
export async function materialize(bp: Blockport, home: string, tag: string, out: string, subject: string, repeat = 1): Promise<BlockportRun> {
  return bp.run(home, 'materialize', subject, materializeArgs(tag, out), repeat, () => fsp.rm(out, { force: true }));
}
