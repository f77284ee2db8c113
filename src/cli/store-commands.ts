import type { Command } from 'commander';
import { BlockportError } from '../errors.js';
import type { GcResult } from '../store/gc.js';
import { Store } from '../store/store.js';
import { action, type CliContext } from './context.js';
import { humanSize } from './format.js';

function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new BlockportError('EUSAGE', `invalid duration ${JSON.stringify(s)} (e.g. 0, 30m, 1h)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
}

function printGc(r: GcResult, ctx: CliContext): void {
  const verb = r.dryRun ? 'would remove' : 'removed';
  ctx.say(`${verb} ${r.removed.length} blobs (${humanSize(r.removedBytes)}) and ${r.tempFiles.length} leftover temp files`);
  if (r.kept) ctx.say(`kept ${r.kept} unreferenced blobs younger than the grace period`);
}

/** Store housekeeping: untagging images and collecting the blobs no tag reaches. */
export function registerStoreCommands(program: Command): void {
  program
    .command('rmi')
    .description('remove image tags from the local store (their blobs go at the next gc)')
    .argument('<names...>', 'NAME:TAG of store images')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
All or nothing: every name is checked first; with one the store does not know, nothing is
untagged, the error names every unknown one, and the exit code is 3.

Examples:
  blockport rmi app:1 worker:6`)
    .action(action((names: string[]) => Store.open().rmi(names), (r, ctx) => {
      r.removed.forEach((n) => ctx.say(`untagged ${n}`));
      if (r.referrers) ctx.say(`dropped ${r.referrers} signature(s), SBOM(s) or attestation(s) of no image left (gc frees their blobs)`);
    }));

  program
    .command('gc')
    .description('delete blobs (layers, blocks, manifests) that no tag in the store reaches')
    .option('--grace <duration>', 'keep unreferenced blobs modified more recently than this (default 1h)', '1h')
    .option('--dry-run', 'report what would go, delete nothing')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  blockport rmi app:1 && blockport gc --grace 0
  blockport gc --dry-run --json`)
    .action(action((flags: { grace: string; dryRun?: boolean }) => Store.open().gc({ graceMs: parseDuration(flags.grace), dryRun: flags.dryRun }), printGc));
}
