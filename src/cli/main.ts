#!/usr/bin/env -S node --max-semi-space-size=2
import './threadpool.js';
import '../transports.js';
import { Command, CommanderError } from 'commander';
import { BlockportError, fromSystemError } from '../errors.js';
import { listTransports } from '../oci/transport.js';
import { registerBundleCommands } from './bundle-commands.js';
import { registerStoreCommands } from './store-commands.js';
import { registerBuildCommand } from './build.js';
import { registerStatsCommand } from './stats.js';
import { registerServeCommand } from './serve.js';
import { action, makeContext } from './context.js';
import { registerCopy } from './copy.js';
import { registerPull } from './pull.js';
import { registerPush } from './push.js';

// each command's code is imported when it runs, so a command starts without the others' modules
const blockifyCli = () => import('./blockify.js');
const materializeCli = () => import('./materialize.js');
const inspectCli = () => import('./inspect.js');

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The references every command takes, one line (or more) per registered transport. */
function referencesHelp(): string {
  const lines = listTransports().map((t) => (t.usage.length < 32 ? `  ${t.usage.padEnd(33)}${t.description}` : `  ${t.usage}\n${' '.repeat(35)}${t.description}`));
  return `\nReferences:\n${lines.join('\n')}`;
}

export function buildProgram(): Command {
  const program = new Command('blockport')
    .description('Container image upgrades that cost only the bytes that really changed.')
    .option('--debug', 'print stack traces on errors')
    .version('0.1.0')
    .addHelpText('after', referencesHelp())
    .showHelpAfterError()
    // set before the subcommands are added, so they inherit them: usage errors then exit 2
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('blockify')
    .description('turn an image into block form: big files and packages become shared blocks')
    .argument('<src>', 'image to read')
    .argument('<dst>', 'where to write the block-form image (oci:, oci-archive:, docker:// or NAME:TAG)')
    .option('--preset <name>', 'java (jars, wars), node (node_modules packages), python (site-packages dists), auto (big files); repeatable', collect)
    .option('--min-size <size>', 'files at or above this size become blocks (default 1M)')
    .option('--include <glob>', 'files matching this glob become blocks whatever their size; repeatable', collect)
    .option('--exclude <glob>', 'files matching this glob never become blocks; repeatable', collect)
    .option('--compress <kind>', 'compression of rewritten layers: none (default; bundles compress and delta them), gzip (default for docker://), zstd')
    .option('--no-referrers', "leave the source's signatures, SBOMs and attestations behind (default: copied beside the image)")
    .option('--platform <os/arch[/variant]>', 'of a multi-platform image, blockify only this platform (repeatable; default: every platform)', collect)
    .option('--no-original', "keep neither the source manifest nor the compressors of rewritten layers (saves one compression pass per compressed layer; materialize then cannot give the source's digest)")
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  blockport blockify docker-archive:app-1.tar oci:./out:1 --preset java
  blockport blockify oci:./build:latest app:1 --preset node --min-size 512K
  blockport blockify docker-archive:svc.tar svc:2 --include 'opt/models/*.bin' --json
  blockport blockify docker-archive:app-1.tar docker://registry.local:5000/team/app:1 --preset java`)
    .action(action(async (src: string, dst: string, flags) => (await blockifyCli()).blockifyCommand(src, dst, flags, makeContext(Boolean(flags.json))), async (r, ctx) => (await blockifyCli()).printBlockify(r, ctx)));

  program
    .command('materialize')
    .description('turn a block-form image back into the standard image it came from (same diff_ids, same config)')
    .argument('<src>', 'block-form (or standard) image')
    .argument('<dst>', 'docker-archive:FILE[:NAME:TAG], oci:DIR[:TAG], oci-archive:FILE[:TAG], docker://HOST/REPO:TAG or NAME:TAG')
    .option('--compress <kind>', "layer compression for oci:, oci-archive: and docker:// outputs: original (their default: the source's own blobs and manifest), none (the store's default), gzip, zstd")
    .option('--platform <os/arch[/variant]>', "of a multi-platform image, only this platform (repeatable; default: all for oci:, oci-archive:, docker://; the host's for docker-archive:)", collect)
    .option('--require-original', "refuse unless every blob, the manifest and the index can be the source's own, byte for byte")
    .option('--verify', 'hash every layer against its diff_id, even those the store has verified before')
    .option('--force', 'replace an existing docker-archive: or oci-archive: file (refused by default)')
    .option('--no-referrers', 'write no signatures, SBOMs or attestations beside the image (default: those of the manifest digest written, to oci: and docker://)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
With --compress original, each layer blockify put in block form is spliced, then compressed again
by the compressor blockify found re-creates its blob, and checked against the source's digest
before it is written under that name; the source's manifest (and index) bytes follow, so the
digest signatures refer to is the vendor's. A layer no compressor re-creates is written
uncompressed (or as --compress says) and named in the output: the manifest digest then changes.

Layers from the store that apply (or an earlier materialize) checked against their diff_ids are
copied without hashing them again; --verify hashes them anyway.

Examples:
  blockport materialize oci:./out:1 docker-archive:app-1.tar:app:1 && docker load -i app-1.tar
  blockport materialize app:2 oci:./standard:2
  blockport materialize app:2 docker-archive:app-2.tar --verify
  blockport materialize app:2 docker://registry.local/app:2 --require-original`)
    .action(action(async (src: string, dst: string, flags) => (await materializeCli()).materializeCommand(src, dst, flags, makeContext(Boolean(flags.json))), async (r, ctx) => (await materializeCli()).printMaterialize(r, ctx)));

  program
    .command('inspect')
    .description('show layers, blocks, import entries and sizes of an image')
    .argument('<ref>', 'any image reference')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Examples:
  blockport inspect oci:./out:1
  blockport inspect app:1 --json | jq '.layers[].imports | length'`)
    .action(action(async (ref: string) => (await inspectCli()).inspectCommand(ref), async (r, ctx) => (await inspectCli()).printInspect(r, ctx)));

  program
    .command('images')
    .description('list the images in the local store')
    .option('--json', 'print the result as JSON')
    .action(action(async () => (await inspectCli()).imagesCommand(), async (r, ctx) => (await inspectCli()).printImages(r, ctx)));

  registerBundleCommands(program);
  registerStoreCommands(program);
  registerBuildCommand(program);
  registerStatsCommand(program);
  registerServeCommand(program);
  registerPush(program);
  registerPull(program);
  registerCopy(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const debug = argv.includes('--debug');
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    const e = toBlockportError(err);
    if (json) process.stderr.write(`${JSON.stringify({ error: { code: e.code, exitCode: e.exitCode, message: e.message, ...(e.subject ? { subject: e.subject } : {}) } })}\n`);
    else process.stderr.write(`blockport: ${e.message}\n`);
    if (debug) process.stderr.write(`${(err as Error)?.stack ?? err}\n`);
    return e.exitCode;
  }
}

/** Any failure as a coded error: system errors (ENOSPC, EISDIR...) name their path; the rest is EIO. */
function toBlockportError(err: unknown): BlockportError {
  if (err instanceof BlockportError) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code)) return fromSystemError(err, e.path ?? 'a file');
  return new BlockportError('EIO', e?.message ?? String(err), { cause: err });
}

// `blockport images | head` closes our stdout early: that is not an error
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

// if the event loop ever drains before main settles, that is a failure, never a silent success
process.exitCode = 70;
main(process.argv).then((code) => {
  process.exitCode = code;
});
