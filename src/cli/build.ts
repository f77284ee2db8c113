import type { Command } from 'commander';
import type { BuildResult } from '../build/build.js';
import type { BuildConfig } from '../build/config.js';
import { BlockportError } from '../errors.js';
import { action, makeContext, type CliContext } from './context.js';
import { humanSize, parseCompression, shortDigest, table } from './format.js';

// the build code is imported when the command runs, so other commands start without it
const configCode = () => import('../build/config.js');
const refs = () => import('../oci/reference.js');

export interface BuildFlags {
  from?: string;
  add?: string[];
  layer?: string[];
  entrypoint?: string;
  cmd?: string;
  env?: string[];
  workdir?: string;
  user?: string;
  label?: string[];
  expose?: string[];
  preset?: string[];
  include?: string[];
  exclude?: string[];
  minSize?: string;
  platform?: string;
  config?: string;
  tag?: string;
  chown?: string;
  compress?: string;
}

/**
 * The config file's settings with the flags on top: a flag given replaces the file's value;
 * --env and --label replace single keys; --add/--layer, when given, replace the file's layers,
 * in command-line order.
 */
export async function buildConfigFrom(dst: string | undefined, flags: BuildFlags, argv: string[] = []): Promise<BuildConfig> {
  const { parseCommand, parsePairs, parsePresetList, readConfigFile } = await configCode();
  const { checkNameTag } = await refs();
  const file = flags.config ? await readConfigFile(flags.config) : {};
  if (flags.tag && dst) throw new BlockportError('EUSAGE', 'build: give --tag NAME:TAG or a DST reference, not both');
  const layers = await layerFlags(flags, argv);
  const c: BuildConfig = {
    ...file,
    from: flags.from ?? file.from ?? '',
    layers: layers.length ? layers : (file.layers ?? []),
    env: { ...file.env, ...parsePairs(flags.env ?? [], '--env') },
    labels: { ...file.labels, ...parsePairs(flags.label ?? [], '--label') },
    expose: [...(file.expose ?? []), ...(flags.expose ?? [])],
  };
  if (flags.entrypoint !== undefined) c.entrypoint = parseCommand(flags.entrypoint, '--entrypoint', 'entrypoint');
  if (flags.cmd !== undefined) c.cmd = parseCommand(flags.cmd, '--cmd', 'cmd');
  if (flags.workdir !== undefined) c.workdir = flags.workdir;
  if (flags.user !== undefined) c.user = flags.user;
  if (flags.preset) c.preset = parsePresetList(flags.preset, '--preset');
  if (flags.include) c.include = flags.include;
  if (flags.exclude) c.exclude = flags.exclude;
  if (flags.minSize !== undefined) c.minSize = flags.minSize;
  if (flags.platform !== undefined) c.platform = flags.platform;
  if (flags.chown !== undefined) c.chown = flags.chown;
  if (flags.compress !== undefined) c.compress = parseCompression(flags.compress, 'none');
  if (flags.tag) c.to = checkNameTag(flags.tag, '--tag');
  else if (dst) c.to = dst;
  if (!c.from) throw new BlockportError('EUSAGE', 'build: no base image (--from REF, or --from scratch)');
  if (!c.to) throw new BlockportError('EUSAGE', 'build: no destination (--tag NAME:TAG or a DST reference)');
  return c;
}

/** --add and --layer in the order they were given (commander keeps each list apart). */
async function layerFlags(flags: BuildFlags, argv: string[]): Promise<BuildConfig['layers']> {
  const { parseAdd, parseLayerFlag } = await configCode();
  const adds = [...(flags.add ?? [])];
  const groups = [...(flags.layer ?? [])];
  const order = argv.filter((a) => /^--(add|layer)(=|$)/.test(a)).map((a) => (a.startsWith('--add') ? 'add' : 'layer'));
  // without argv (a library caller), adds come first
  const kinds = order.length === adds.length + groups.length ? order : [...adds.map(() => 'add'), ...groups.map(() => 'layer')];
  return kinds.map((k) => (k === 'add' ? { files: [parseAdd(adds.shift()!, '--add')] } : parseLayerFlag(groups.shift()!, '--layer')));
}

export async function buildCommand(dst: string | undefined, flags: BuildFlags, ctx: CliContext, argv: string[] = []): Promise<BuildResult> {
  const config = await buildConfigFrom(dst, flags, argv);
  const bar = ctx.progress('build');
  try {
    const { build } = await import('../build/build.js');
    return await build(config, { onProgress: (p) => bar.update(p.bytes, p.bytes, `layer ${p.layer + 1}/${p.layers}`) });
  } finally {
    bar.stop();
  }
}

export function printBuild(r: BuildResult, ctx: CliContext): void {
  const rows = [['LAYER', 'DIFF_ID', 'FILES', 'BLOCKS', 'NEW', 'MOVED', 'TAR', 'LAYER OUT']];
  for (const l of r.layers) {
    rows.push([l.name, shortDigest(l.diffId), String(l.files), String(l.blocks), String(l.newBlocks), humanSize(l.blockBytes), humanSize(l.uncompressedSize), humanSize(l.outputSize)]);
  }
  ctx.say(table(rows));
  const bsize = r.blocks.reduce((n, b) => n + b.size, 0);
  ctx.say(`\n${r.destination}: ${r.baseLayers} base layers + ${r.layers.length} built, ${r.blocks.length} blocks (${humanSize(bsize)}), ${r.platform.os}/${r.platform.architecture}`);
  ctx.say(`image ${r.top.digest}`);
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `blockport build`: the flags are the contract of the build settings (README, "build"). */
export function registerBuildCommand(program: Command): void {
  program
    .command('build')
    .description('build a block-form image from build output (jars, node_modules, site-packages) without Docker')
    .argument('[dst]', 'where to write the image (oci:, oci-archive:, docker:// or NAME:TAG); or use --tag')
    .option('--from <ref>', 'base image: any reference, or scratch')
    .option('--add <src:dest>', 'a file or folder into the image, one layer each; repeatable', collect)
    .option('--layer <name=src:dest,...>', 'several files or folders in one named layer; repeatable', collect)
    .option('--entrypoint <cmd|json>', 'a plain word is one argument; a JSON array is used as is')
    .option('--cmd <cmd|json>', 'default arguments (a plain word or a JSON array)')
    .option('--env <k=v>', 'environment variable; repeatable', collect)
    .option('--workdir <dir>', 'working directory (absolute)')
    .option('--user <user>', 'user the container runs as (files stay owned by 0:0 unless --chown)')
    .option('--label <k=v>', 'image label; repeatable', collect)
    .option('--expose <port>', 'PORT[/tcp|udp]; repeatable', collect)
    .option('--preset <name>', 'what becomes a block: java, node, python, auto (as for blockify); repeatable', collect)
    .option('--include <glob>', 'files matching this glob become blocks whatever their size; repeatable', collect)
    .option('--exclude <glob>', 'files matching this glob never become blocks; repeatable', collect)
    .option('--min-size <size>', 'files at or above this size become blocks (default 1M)')
    .option('--platform <os/arch>', 'platform recorded (default: the base\'s, else this machine\'s)')
    .option('--chown <uid[:gid]>', 'owner of every added file (default 0:0)')
    .option('--config <file>', 'blockport.json with the same settings; flags override it')
    .option('--tag <name:tag>', 'tag the image in the local store')
    .option('--compress <kind>', 'layer compression: none (default), gzip (default for docker://), zstd')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Files are written sorted, with mtime $SOURCE_DATE_EPOCH (or 0), owner 0:0 and modes 0644/0755, so
the same inputs give the same image digest on any machine.

Examples:
  blockport build --from eclipse-temurin:21 --add target/lib:/app/lib --add target/app.jar:/app/ \\
    --entrypoint '["java","-cp","/app/lib/*:/app/app.jar","com.example.Main"]' --preset java --tag app:1
  blockport build --from scratch --layer deps=node_modules:/app/node_modules \\
    --layer app=dist:/app,package.json:/app/ --preset node --cmd '["node","/app/index.js"]' oci:./out:1
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) blockport build --config blockport.json --tag app:2`)
    .action(action(async (dst: string | undefined, flags: BuildFlags) => buildCommand(dst, flags, makeContext(Boolean((flags as { json?: boolean }).json)), process.argv), printBuild));
}
