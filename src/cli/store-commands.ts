import type { Command } from 'commander';
import { BlockportError } from '../errors.js';
import { openStore } from '../oci/open.js';
import { checkNameTag } from '../oci/reference.js';
import { gcStore, type GcResult } from '../store/gc.js';
import { action, makeContext, type CliContext } from './context.js';
import { humanSize } from './format.js';

function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new BlockportError('EUSAGE', `invalid duration ${JSON.stringify(s)} (e.g. 0, 30m, 1h)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
}

/**
 * Untags each name, like `docker rmi`: the known ones go, every unknown one is named, and the
 * command then fails with ENOTFOUND (exit 3). A malformed name is refused before anything goes.
 */
async function rmi(names: string[], ctx: CliContext): Promise<void> {
  for (const n of names) checkNameTag(n, 'rmi');
  const store = openStore();
  const removed: string[] = [];
  const missing: string[] = [];
  for (const n of names) (await store.untag(n) ? removed : missing).push(n);
  if (ctx.json) process.stdout.write(`${JSON.stringify({ removed, missing }, null, 2)}\n`);
  else removed.forEach((n) => ctx.say(`untagged ${n}`));
  if (missing.length) {
    const rest = removed.length ? ` (untagged the other ${removed.length})` : '';
    throw new BlockportError('ENOTFOUND', `no image ${missing.join(', ')} in the store${rest}`, { subject: missing[0] });
  }
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
Like docker rmi: the names the store knows are untagged, each unknown one is named, and the exit
code is then 3.

Examples:
  blockport rmi app:1 worker:6`)
    .action((names: string[], flags: { json?: boolean }) => rmi(names, makeContext(Boolean(flags.json))));

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
    .action(action((flags: { grace: string; dryRun?: boolean }) => gcStore(openStore(), { graceMs: parseDuration(flags.grace), dryRun: flags.dryRun }), printGc));
}
