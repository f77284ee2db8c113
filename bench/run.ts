// `npm run bench`: on the scenario images of bench/scenarios.ts, the bytes a receiver gets for each
// upgrade under every strategy, and the time and peak RSS of blockify, bundle, apply and
// materialize against skopeo copy, GNU tar and cp (blockify, materialize and the tools on java-xl,
// bundle and apply on java v1->v3). Writes docs/benchmarks.md, docs/benchmarks.json and docs/bytes.svg.
//
// Then, per scenario image, the receiver's side (bench/measure-receiver.ts): materialize, apply and
// blockify against cp + sync, skopeo copy and a GNU tar repack, with peak RSS.
//
//   node dist/bench/run.js [--out bench/work] [--reuse] [--fresh] [--keep] [--docs docs]
//   node dist/bench/run.js --receiver [--only java-v3,node-v2] [--out bench/work] [--reuse]   (only the per-scenario table, printed)
import { promises as fsp } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { mapLimit } from './exec.js';
import { apply, blockify, Blockport, bundle, materialize, materializeArgs, storeName, type BlockportRun } from './measure-blockport.js';
import { bytesChart } from './measure-chart.js';
import { FULL_GZIP, FULL_ZSTD, Inputs, layerLevel, PATCH_FROM, sizeOf, toolVersion } from './measure-bytes.js';
import { cpSyncCommand, gnuTarRepack, plainCp, skopeoCopy, type ToolRun } from './measure-compare.js';
import { bestInTurns, spawnText, SizeCache } from './measure-exec.js';
import { flattenArchive, perFileDedup, type FlatImage, type PerFileResult } from './measure-files.js';
import { profile, type ProfileSummary } from './measure-profile.js';
import { formatReceiver, receiverRow, type ReceiverRow } from './measure-receiver.js';
import { formatReport } from './measure-report.js';
import { formatTargets, judge, type Results, type Timings, type UpgradeBytes } from './measure-targets.js';
import { buildScenarios, type ScenarioImage, type ScenarioSet, type Upgrade } from './scenarios.js';

/** The upgrades measured, by their tags: the three Java ones and the node one. */
const MEASURED: readonly [string, string, string][] = [
  ['java v1->v2', 'java-v1', 'java-v2'],
  ['java v1->v3', 'java-v1', 'java-v3'],
  ['teams (java v1 -> teams v1)', 'java-v1', 'teams-v1'],
  ['node v1->v2', 'node-v1', 'node-v2'],
];

const log = (() => {
  const t0 = Date.now();
  return (line: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
})();

interface Ctx {
  set: ScenarioSet;
  upgrades: Upgrade[];
  image: (tag: string) => ScenarioImage;
  work: string;
  bp: Blockport;
  delta: boolean;
  /** The image blockify, materialize and the tools they are compared with are timed on (java-xl). */
  big: string;
  /** When no measured upgrade brings `big`: the tag the customer holds when it gets `big` in a bundle. */
  bigSince: string | null;
  /** The upgrade whose bundle and apply are timed (java v1->v3). */
  timed: Upgrade;
}

async function scenarioSet(out: string, reuse: boolean): Promise<ScenarioSet> {
  if (reuse) return JSON.parse(await fsp.readFile(join(out, 'scenarios.json'), 'utf8')) as ScenarioSet;
  return buildScenarios({ out, log: (l) => log(`scenarios: ${l}`) });
}

const presetOf = (img: ScenarioImage) => (img.scenario === 'node' ? 'node' : 'java');
const layerBytes = (img: ScenarioImage) => img.layers.reduce((n, l) => n + l.tarBytes, 0);

type Bundles = Map<string, { plain: BlockportRun & { bytes: number }; delta: (BlockportRun & { bytes: number }) | null }>;

/** The timed image blockified other ways (each into a store of its own, removed after), and profiled. */
async function blockifyVariants(c: Ctx): Promise<{ variants: BlockportRun[]; profile: ProfileSummary }> {
  const big = c.image(c.big);
  const src = `docker-archive:${big.archive}`;
  const preset = ['--preset', presetOf(big)];
  const variants: BlockportRun[] = [];
  for (const [step, args] of [
    ['blockify, oci: in (gzip layers)', [big.ref, 'scratch:1', ...preset]],
    ['blockify --compress zstd', [src, 'scratch:1', ...preset, '--compress', 'zstd']],
    ['blockify --compress gzip', [src, 'scratch:1', ...preset, '--compress', 'gzip']],
  ] as const) {
    variants.push(await c.bp.run('scratch', step, big.tag, ['blockify', ...args]));
    await fsp.rm(join(c.work, 'scratch'), { recursive: true, force: true });
  }
  const prof = await profile(c.bp.command('scratch', ['blockify', src, 'scratch:1', ...preset]));
  await fsp.rm(join(c.work, 'scratch'), { recursive: true, force: true });
  return { variants, profile: prof };
}

/** Vendor side: every image blockified (the timed one first, into an empty store), every upgrade bundled. */
async function vendor(c: Ctx): Promise<{ blockify: BlockportRun; bundles: Bundles }> {
  const big = c.image(c.big);
  log(`blockify ${big.tag} (timed, best of 3, each into an empty store)`);
  const first = await blockify(c.bp, big.archive, big.tag, presetOf(big), 'vendor', 3);
  const tags = [...new Set(c.upgrades.flatMap((u) => [u.from, u.to]))].filter((t) => t !== c.big);
  for (const tag of tags) {
    log(`blockify ${tag}`);
    const img = c.image(tag);
    await blockify(c.bp, img.archive, tag, presetOf(img));
  }
  const bundles: Bundles = new Map();
  for (const u of c.upgrades) {
    log(`bundle ${u.name}${c.delta ? ' (and --delta)' : ''}`);
    const repeat = u === c.timed ? 3 : 1;
    const plain = await bundle(c.bp, u.from, u.to, join(c.work, `${u.to}.bpk`), { repeat, subject: u.name });
    const delta = c.delta ? await bundle(c.bp, u.from, u.to, join(c.work, `${u.to}.delta.bpk`), { repeat, subject: u.name, delta: true }) : null;
    bundles.set(u.name, { plain, delta });
  }
  for (const from of new Set(c.upgrades.map((u) => u.from))) await bundle(c.bp, undefined, from, join(c.work, `${from}.full.bpk`), { subject: `${from} (full)` });
  if (c.bigSince) await bundle(c.bp, c.bigSince, c.big, join(c.work, `${c.big}.bpk`), { subject: `${c.bigSince} -> ${c.big}` });
  return { blockify: first, bundles };
}

type Timed = { apply: BlockportRun; materialize: BlockportRun; archive: string; cpSync?: ToolRun };

/** Customer side: stores holding the old images apply each upgrade and materialize the new image. */
async function customers(c: Ctx): Promise<Timed> {
  const homes = c.delta ? ['customer', 'customer-delta'] : ['customer'];
  for (const home of homes) {
    for (const from of new Set(c.upgrades.map((u) => u.from))) await apply(c.bp, home, join(c.work, `${from}.full.bpk`), `${from} (full)`);
  }
  const ordered = [...c.upgrades].sort((a, b) => Number(b === c.timed) - Number(a === c.timed));
  let got: Partial<Timed> = {};
  for (const u of ordered) {
    for (const home of homes) {
      const delta = home === 'customer-delta';
      log(`apply + materialize ${u.name}${delta ? ' (delta bundle)' : ''}`);
      const a = await apply(c.bp, home, join(c.work, `${u.to}${delta ? '.delta' : ''}.bpk`), u.name + (delta ? ' (--delta bundle)' : ''));
      const out = join(c.work, `${home}-${u.to}.tar`);
      const isBig = u.to === c.big && !delta && !got.materialize;
      const m = await materialize(c.bp, home, u.to, out, u.name + (delta ? ' (--delta bundle)' : ''), isBig ? 3 : 1);
      if (u === c.timed && !delta) got.apply = a;
      if (isBig) got = { ...got, materialize: m, archive: out };
      else await fsp.rm(out, { force: true });
    }
  }
  if (c.bigSince) got = { ...got, ...(await bigCustomer(c, c.bigSince)) };
  return got as Timed;
}

/** The customer (holding `since` by now) applies the bundle of the timed image and materializes it. */
async function bigCustomer(c: Ctx, since: string): Promise<{ materialize: BlockportRun; cpSync: ToolRun; archive: string }> {
  log(`apply + materialize ${since} -> ${c.big}, taking turns with cp + sync of its output`);
  await apply(c.bp, 'customer', join(c.work, `${c.big}.bpk`), `${since} -> ${c.big}`);
  const archive = join(c.work, `customer-${c.big}.tar`);
  const copy = join(c.work, 'cp-copy.tar');
  const mat = c.bp.command('customer', materializeArgs(c.big, archive));
  const sync = cpSyncCommand(archive, copy);
  const [m, s] = await bestInTurns(3, [
    { c: mat, reset: () => fsp.rm(archive, { force: true }) },
    { c: sync, reset: () => fsp.rm(copy, { force: true }) },
  ]);
  await fsp.rm(copy, { force: true });
  const cpSync: ToolRun = { what: 'cp + sync', command: `bash -c '${sync.args[1]}'`, ...s };
  return { materialize: c.bp.record('materialize', c.big, mat, m), cpSync, archive };
}

/** cp + sync of `file`, best of 3, when materialize was not timed in turns with it. */
async function cpSyncAlone(file: string, work: string): Promise<ToolRun> {
  const copy = join(work, 'cp-copy.tar');
  const sync = cpSyncCommand(file, copy);
  const [s] = await bestInTurns(3, [{ c: sync, reset: () => fsp.rm(copy, { force: true }) }]);
  await fsp.rm(copy, { force: true });
  return { what: 'cp + sync', command: `bash -c '${sync.args[1]}'`, ...s };
}

/** The sizes of every strategy per upgrade; the compressions run two at a time, through the cache. */
async function bytesOf(c: Ctx, cache: SizeCache, bundles: Bundles): Promise<UpgradeBytes[]> {
  const inputs = new Inputs();
  const [gz, zs] = await Promise.all([toolVersion('gzip'), toolVersion('zstd')]);
  const jobs = c.upgrades.flatMap((u) => [
    () => sizeOf(cache, inputs, zs, FULL_ZSTD, { FILE: c.image(u.to).archive }),
    () => sizeOf(cache, inputs, zs, PATCH_FROM, { OLD: c.image(u.from).archive, NEW: c.image(u.to).archive }),
    () => sizeOf(cache, inputs, gz, FULL_GZIP, { FILE: c.image(u.to).archive }),
  ]);
  const compressed = mapLimit(jobs, 2, (j) => j());
  const flats = new Map<string, FlatImage>();
  const flat = async (tag: string) => flats.get(tag) ?? flats.set(tag, await flattenArchive(c.image(tag).archive)).get(tag)!;
  const perFile: PerFileResult[] = [];
  for (const u of c.upgrades) {
    log(`per-file dedup ${u.name}`);
    perFile.push(await perFileDedup(c.image(u.to).archive, await flat(u.from), await flat(u.to)));
  }
  log('waiting for the full-image and --patch-from compressions (cached when the inputs did not change)');
  const sizes = await compressed;
  return Promise.all(c.upgrades.map(async (u, i) => ({
    name: u.name, from: u.from, to: u.to,
    fullGzip: sizes[3 * i + 2], fullZstd: sizes[3 * i], patchFrom: sizes[3 * i + 1],
    layerLevel: await layerLevel(c.set.layout, u.from, u.to), perFile: perFile[i],
    bundle: bundles.get(u.name)!.plain.bytes, bundleDelta: bundles.get(u.name)!.delta?.bytes ?? null,
  })));
}

async function machine(work: string): Promise<Record<string, string>> {
  const v = async (cmd: string, args = ['--version']) => (await spawnText(cmd, args).catch(() => 'absent')).split('\n')[0].trim();
  const df = (await spawnText('df', ['-h', '--output=fstype,size,avail', work])).trim().split('\n').pop()!.trim().split(/\s+/);
  return {
    cpus: `${availableParallelism()} x ${cpus()[0]?.model ?? 'unknown'}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    disk: `${df[0]}, ${df[1]} (${df[2]} free) holding the work folder`,
    kernel: `Linux ${release()}`,
    node: process.version,
    zstd: await v('zstd'), gzip: await v('gzip'), skopeo: await v('skopeo'), tar: await v('tar'),
    'load average at start': loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}

interface Options {
  out: string;
  docs: string;
  reuse: boolean;
  fresh: boolean;
  keep: boolean;
  receiver: boolean;
  only?: string;
}

/** The images the receiver table covers: every upgrade's target and the timed image. */
function receiverTags(c: Ctx, only?: string): string[] {
  const all = [...new Set([...c.upgrades.map((u) => u.to), c.big])];
  return only ? all.filter((t) => only.split(',').includes(t)) : all;
}

/** The receiver table: one row per image, measured one after the other. */
async function receiverRows(c: Ctx, only?: string): Promise<ReceiverRow[]> {
  const rows: ReceiverRow[] = [];
  for (const tag of receiverTags(c, only)) {
    log(`receiver: ${tag} (blockify, full bundle, apply, materialize in turns with cp + sync, skopeo copy, tar repack)`);
    rows.push(await receiverRow(c.bp, c.set.layout, c.image(tag), presetOf(c.image(tag))));
  }
  return rows;
}

/** Sets the run up: the scenario set, the upgrades found in it, an empty work folder. */
async function setup(o: Options): Promise<Ctx> {
  const set = await scenarioSet(o.out, o.reuse);
  const upgrades = MEASURED.map(([name, from, to]) => ({ name, from, to })).filter((u) => set.tags.includes(u.from) && set.tags.includes(u.to));
  if (upgrades.length === 0) throw new Error(`no scenario images in ${o.out}: run node dist/bench/scenarios.js --out ${o.out}`);
  const image = (tag: string): ScenarioImage => {
    const img = set.images.find((i) => i.tag === tag);
    if (!img) throw new Error(`no image ${tag} in ${o.out}/scenarios.json`);
    return img;
  };
  // bundle and apply are timed on java v1->v3 (else the upgrade to the largest target); blockify,
  // materialize and the tools on java-xl, 1.1 GB of layers, the size the issue names (else that target).
  const bySize = [...upgrades].sort((a, b) => layerBytes(image(b.to)) - layerBytes(image(a.to)));
  const timed = upgrades.find((u) => u.to === 'java-v3') ?? bySize[0];
  const big = set.tags.includes('java-xl') ? 'java-xl' : timed.to;
  const bigSince = upgrades.some((u) => u.to === big) ? null : timed.to;
  const work = join(o.out, 'run');
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true });
  const bp = new Blockport(work);
  return { set, upgrades, image, work, bp, delta: await bp.hasDelta(), big, bigSince, timed };
}

/** The whole measurement, in the order that keeps the timed commands away from our own load. */
async function measure(c: Ctx, o: Options, started: number): Promise<Results> {
  const mach = await machine(c.work);
  log(`${c.upgrades.length} upgrades; timing on ${c.big}, bundle and apply on ${c.timed.name}; bundle --delta ${c.delta ? 'available' : 'not available'}; load ${mach['load average at start']}`);
  const v = await vendor(c);
  log(`blockify ${c.big} other ways, and profiled`);
  const variants = await blockifyVariants(c);
  const cust = await customers(c);
  log(`materialize ${c.big} profiled; skopeo copy, GNU tar, cp`);
  const matProfile = await profile(c.bp.command('customer', ['materialize', storeName(c.big), `docker-archive:${join(c.work, 'profiled.tar')}:${storeName(c.big)}`]));
  await fsp.rm(join(c.work, 'profiled.tar'), { force: true });
  const skopeo = await skopeoCopy(c.set.layout, c.big, join(c.work, 'skopeo.tar'), c.image(c.big).archiveName);
  const gnuTar = await gnuTarRepack(c.set.layout, c.big, c.work);
  const cp = await plainCp(cust.archive, c.work);
  const cpSync = cust.cpSync ?? (await cpSyncAlone(cust.archive, c.work));
  const cache = await SizeCache.load(join(o.out, 'cache', 'bench-sizes.json'), o.fresh);
  const bytes = await bytesOf(c, cache, v.bundles);
  const bigBundle = v.bundles.get(c.timed.name)!;
  const timings: Timings = {
    tag: c.big, layerBytes: layerBytes(c.image(c.big)), blockify: v.blockify, blockifyVariants: variants.variants,
    bundle: bigBundle.plain, bundleDelta: bigBundle.delta, apply: cust.apply, materialize: cust.materialize, skopeo, gnuTar,
    cp: cp.cp, cpSync, archiveBytes: cp.bytes, profiles: { blockify: variants.profile, materialize: matProfile },
  };
  const receiver = await receiverRows(c);
  mach['load average at end'] = loadavg().map((x) => x.toFixed(2)).join(' ');
  return {
    date: new Date().toISOString(), machine: mach, seconds: Math.round((Date.now() - started) / 1000),
    upgrades: bytes, timings, receiver, runs: c.bp.log, cachedSizes: cache.hits.size, targets: judge(bytes, timings, c.bp.log, receiver),
  };
}

/** docs/benchmarks.md, docs/benchmarks.json and docs/bytes.svg, with paths relative to the repository. */
async function writeDocs(r: Results, docs: string): Promise<string> {
  const root = resolve('.') + '/';
  const report = formatReport(r).replaceAll(root, '');
  await fsp.mkdir(docs, { recursive: true });
  await fsp.writeFile(join(docs, 'benchmarks.md'), report);
  await fsp.writeFile(join(docs, 'benchmarks.json'), JSON.stringify(r, null, 2).replaceAll(root, '') + '\n');
  await fsp.writeFile(join(docs, 'bytes.svg'), bytesChart(r.upgrades, 'Bytes a receiver gets per upgrade'));
  return report;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    out: { type: 'string', default: 'bench/work' }, docs: { type: 'string', default: 'docs' },
    reuse: { type: 'boolean', default: false }, fresh: { type: 'boolean', default: false }, keep: { type: 'boolean', default: false },
    receiver: { type: 'boolean', default: false }, only: { type: 'string' },
  } });
  const o = values as Options;
  o.out = resolve(o.out);
  const started = Date.now();
  const c = await setup(o);
  if (o.receiver) {
    log(`receiver table only; load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    const rows = await receiverRows(c, o.only);
    process.stdout.write(formatReceiver(rows).join('\n') + `\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
    if (!o.keep) await fsp.rm(c.work, { recursive: true, force: true });
    return;
  }
  const results = await measure(c, o, started);
  const report = await writeDocs(results, o.docs);
  process.stdout.write(report.slice(report.indexOf('## Bytes')) + '\n' + formatTargets(results.targets).join('\n') + '\n');
  if (!o.keep) await fsp.rm(c.work, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
