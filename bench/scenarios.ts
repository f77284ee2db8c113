// Builds the benchmark input images: `node dist/bench/scenarios.js --out bench/work [--only java,teams,node,java-xl]`.
// Inputs come from the package registries only (Debian through apt-get, npm through npm), layer
// tars are made by GNU tar, images by umoci, docker-archives by skopeo: none of it by blockport.
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Apt } from './apt.js';
import type { BuildContext } from './context.js';
import { hasTool, mapLimit } from './exec.js';
import { exportArchive, LayoutBuilder, manifestDigest, manifestLayers } from './image.js';
import { planJava, type PlannedImage } from './java.js';
import { ResolutionLock } from './lockfile.js';
import { planNode } from './node.js';
import { formatSummary, jarShare } from './summary.js';

/** The scenarios that can be built (`java-xl`: the one image java-xl, of scenario `java`). */
export type ScenarioName = 'java' | 'teams' | 'node' | 'java-xl';
export const SCENARIO_NAMES: readonly ScenarioName[] = ['java', 'teams', 'node', 'java-xl'];

/** Options of {@link buildScenarios}. */
export interface BuildOptions {
  /** Output folder, e.g. bench/work. */
  out: string;
  /** Build only these scenarios (default: all). */
  only?: readonly ScenarioName[];
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** One layer of a built image. */
export interface ScenarioLayer {
  name: string;
  note: string;
  /** The uncompressed layer tar as GNU tar wrote it. */
  tar: string;
  tarBytes: number;
  /** Size of the gzip blob umoci stored. */
  compressedBytes: number;
  digest: string;
  files: number;
  contentBytes: number;
  jars: number;
}

/** One built image. */
export interface ScenarioImage {
  tag: string;
  scenario: ScenarioName;
  version: string;
  /** `oci:<layout>:<tag>`, as skopeo and blockport name it. */
  ref: string;
  /** The `docker save`-style archive of the same image. */
  archive: string;
  /** The name:tag inside the archive. */
  archiveName: string;
  manifestDigest: string;
  /** What changed against the scenario's previous version. */
  changes: string[];
  layers: ScenarioLayer[];
}

/** An upgrade to measure: a host has `from`, and gets `to`. */
export interface Upgrade {
  name: string;
  from: string;
  to: string;
}

/** Everything a benchmark needs to find the inputs. */
export interface ScenarioSet {
  out: string;
  /** The OCI image layout holding every tag. */
  layout: string;
  archivesDir: string;
  /** Every tag of the set: built by this call, or by an earlier one and still tagged as then. */
  tags: string[];
  images: ScenarioImage[];
  /** Upgrades whose two tags are in the layout. */
  upgrades: Upgrade[];
  /** Jars of teams-v1 found byte-identical in java-v1 (when both are built). */
  teamsShare?: { jars: number; sharedJars: number; bytes: number; sharedBytes: number };
  seconds: number;
}

const UPGRADES: readonly Upgrade[] = [
  { name: 'java v1->v2', from: 'java-v1', to: 'java-v2' },
  { name: 'java v2->v3', from: 'java-v2', to: 'java-v3' },
  { name: 'java v1->v3', from: 'java-v1', to: 'java-v3' },
  { name: 'teams v1 on a java v1 host', from: 'java-v1', to: 'teams-v1' },
  { name: 'node v1->v2', from: 'node-v1', to: 'node-v2' },
];

// Debian packages that provide each tool the build runs.
const TOOLS: Record<string, string> = {
  tar: 'tar', 'dpkg-deb': 'dpkg', 'apt-get': 'apt', umoci: 'umoci', skopeo: 'skopeo', npm: 'npm (or Node.js with npm)',
  javac: 'openjdk-17-jdk-headless', jar: 'openjdk-17-jdk-headless', find: 'findutils',
};

/** Builds the scenario images into `opts.out` (cached: a rerun redoes only what changed). */
export async function buildScenarios(opts: BuildOptions): Promise<ScenarioSet> {
  const started = Date.now();
  const out = resolve(opts.out);
  const only = new Set(opts.only ?? SCENARIO_NAMES);
  const log = opts.log ?? (() => undefined);
  await checkTools();
  const cache = join(out, 'cache');
  const lock = await ResolutionLock.load(join(cache, 'lock.json'));
  const ctx: BuildContext = { out, cache, lock, apt: new Apt(cache, lock), log };
  // The Java layers are mostly CPU (xz, tar), the node ones mostly network and disk: overlap them.
  const plans = await Promise.all([
    only.has('java') || only.has('teams') || only.has('java-xl')
      ? planJava(ctx, { java: only.has('java'), teams: only.has('teams'), xl: only.has('java-xl') })
      : [],
    only.has('node') ? planNode(ctx) : [],
  ]);
  const planned: PlannedImage[] = plans.flat();
  const layout = join(out, 'images');
  const archivesDir = join(out, 'archives');
  const built = await assemble(layout, archivesDir, join(out, 'stamps'), planned, log);
  const images = [...built, ...(await earlierImages(out, layout, built))];
  const present = new Set(images.map((i) => i.tag));
  const set: ScenarioSet = {
    out, layout, archivesDir, images,
    tags: images.map((i) => i.tag),
    upgrades: UPGRADES.filter((u) => present.has(u.from) && present.has(u.to)),
    teamsShare: await shareOf(out, images),
    seconds: Math.round((Date.now() - started) / 100) / 10,
  };
  await fsp.writeFile(join(out, 'scenarios.json'), JSON.stringify(set, null, 2) + '\n');
  return set;
}

async function assemble(layout: string, archivesDir: string, stamps: string, planned: PlannedImage[], log: (l: string) => void): Promise<ScenarioImage[]> {
  const builder = new LayoutBuilder(layout, stamps);
  await builder.init();
  await builder.cleanup();
  await fsp.mkdir(archivesDir, { recursive: true });
  const images: ScenarioImage[] = [];
  try {
    for (const p of planned) {
      if (await builder.build(p)) log(`image: ${p.tag} assembled with umoci`);
    }
  } finally {
    await builder.cleanup();
  }
  // Two at a time: each skopeo run is mostly one core of gunzip.
  await mapLimit(planned, 2, async (p) => {
    const name = `blockport-bench/${p.scenario}:${p.version}`;
    if (await exportArchive(layout, p.tag, join(archivesDir, `${p.tag}.tar`), name, stamps)) log(`archive: ${p.tag}.tar written with skopeo`);
  });
  for (const p of planned) {
    const blobs = await manifestLayers(layout, p.tag);
    images.push({
      tag: p.tag, scenario: p.scenario as ScenarioName, version: p.version, ref: `oci:${layout}:${p.tag}`,
      archive: join(archivesDir, `${p.tag}.tar`), archiveName: `blockport-bench/${p.scenario}:${p.version}`,
      manifestDigest: await manifestDigest(layout, p.tag), changes: p.changes,
      layers: p.layers.map((l, i) => ({
        name: l.name, note: l.note, tar: l.tar, tarBytes: l.tarBytes, compressedBytes: blobs[i].size,
        digest: blobs[i].digest, files: l.stats.files, contentBytes: l.stats.bytes, jars: l.stats.jars,
      })),
    });
  }
  return images;
}

/** Images an earlier run (say, without --only) left in the layout and that are still tagged as then. */
async function earlierImages(out: string, layout: string, built: ScenarioImage[]): Promise<ScenarioImage[]> {
  const text = await fsp.readFile(join(out, 'scenarios.json'), 'utf8').catch(() => undefined);
  if (text === undefined) return [];
  const kept: ScenarioImage[] = [];
  for (const img of (JSON.parse(text) as ScenarioSet).images ?? []) {
    if (built.some((b) => b.tag === img.tag)) continue;
    const digest = await manifestDigest(layout, img.tag).catch(() => undefined);
    if (digest === img.manifestDigest) kept.push(img);
  }
  return kept;
}

async function shareOf(out: string, images: ScenarioImage[]): Promise<ScenarioSet['teamsShare']> {
  if (!images.some((i) => i.scenario === 'java' || i.scenario === 'teams')) return undefined;
  const [java, teams] = ['java', 'teams'].map((s) => join(out, s, 'layers', 'deps-v1.tar'));
  const found = await Promise.all([java, teams].map((f) => fsp.access(f).then(() => true, () => false)));
  return found.every(Boolean) ? jarShare(java, teams) : undefined;
}

async function checkTools(): Promise<void> {
  const missing: string[] = [];
  for (const [tool, pkg] of Object.entries(TOOLS)) {
    if (!(await hasTool(tool))) missing.push(`${tool} (${pkg})`);
  }
  if (missing.length > 0) throw new Error(`missing tools: ${missing.join(', ')}; see bench/README.md`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { out: { type: 'string', default: 'bench/work' }, only: { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of only ?? []) {
    if (!SCENARIO_NAMES.includes(s as ScenarioName)) throw new Error(`--only: unknown scenario ${s} (known: ${SCENARIO_NAMES.join(', ')})`);
  }
  const t0 = Date.now();
  const log = (line: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
  const set = await buildScenarios({ out: values.out!, only: only as ScenarioName[] | undefined, log });
  process.stdout.write(values.json ? JSON.stringify(set, null, 2) + '\n' : formatSummary(set));
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`scenarios: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
