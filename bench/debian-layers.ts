// Layers made of Debian packages, each the packages one more `apt-get install` step would add:
// the closure of (everything below + the new packages) minus the closure of what is below.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { extractDeb, minus, type Deb } from './apt.js';
import type { BuildContext } from './context.js';
import { buildLayer, type BuiltLayer } from './layer.js';

/** Roughly what `debootstrap --variant=minbase` installs (priority required + apt), plus certificates. */
export const BASE_PACKAGES = [
  'base-files', 'base-passwd', 'bash', 'bsdutils', 'coreutils', 'dash', 'debconf', 'debian-archive-keyring',
  'debianutils', 'diffutils', 'dpkg', 'findutils', 'gcc-12-base', 'grep', 'gzip', 'hostname',
  'init-system-helpers', 'libc-bin', 'libc6', 'login', 'mawk', 'mount', 'ncurses-base', 'ncurses-bin',
  'passwd', 'perl-base', 'sed', 'sysvinit-utils', 'tar', 'util-linux', 'apt', 'ca-certificates', 'tzdata',
];

/** A layer of Debian packages and the packages it holds. */
export interface DebLayer {
  layer: BuiltLayer;
  debs: Deb[];
}

/** Options for {@link debLayer}. */
export interface DebLayerOptions {
  /** Packages (name or name=version) installed by the layers below. */
  below: readonly string[];
  /** Packages this layer's install step asks for. */
  wanted: readonly string[];
  /** Says what the layer is, for the history entry. */
  describe: string;
  /** Changes made after unpacking (what maintainer scripts would have done); `key` names them. */
  after?: { key: string; apply: (stage: string) => Promise<void> };
}

/** The layer `name` in `dir` holding the packages that installing `wanted` over `below` adds. */
export async function debLayer(ctx: BuildContext, dir: string, name: string, o: DebLayerOptions): Promise<DebLayer> {
  const all = await ctx.apt.closure([...o.below, ...o.wanted]);
  const lower = o.below.length > 0 ? await ctx.apt.closure(o.below) : [];
  const debs = minus(all, lower);
  const recipe = { debs: debs.map((d) => `${d.name}=${d.version}`), after: o.after?.key ?? null };
  const layer = await buildLayer(dir, name, recipe, async (stage) => {
    ctx.log(`  ${name}: ${debs.length} packages`);
    const files = await ctx.apt.fetch(debs);
    // One after the other: where two packages ship the same path, the later one wins, every time.
    for (const f of files) await extractDeb(f, stage);
    await o.after?.apply(stage);
    return `${o.describe} (${debs.length} Debian packages)`;
  });
  return { layer, debs };
}

const bases = new WeakMap<BuildContext, Promise<DebLayer>>();

/** The Debian base layer every scenario starts from, built once per run (in <out>/java/layers). */
export function baseLayer(ctx: BuildContext): Promise<DebLayer> {
  let base = bases.get(ctx);
  if (!base) {
    const dir = join(ctx.out, 'java', 'layers');
    base = fsp.mkdir(dir, { recursive: true }).then(() =>
      debLayer(ctx, dir, 'base', { below: [], wanted: BASE_PACKAGES, describe: 'Debian bookworm base', after: { key: 'base-1', apply: finishBase } }),
    );
    bases.set(ctx, base);
  }
  return base;
}

/** What base-passwd's and other maintainer scripts would have written into a minimal root. */
export async function finishBase(stage: string): Promise<void> {
  const share = join(stage, 'usr/share/base-passwd');
  for (const f of ['passwd', 'group']) {
    const master = join(share, `${f}.master`);
    if (await exists(master)) await fsp.copyFile(master, join(stage, 'etc', f));
  }
  await fsp.writeFile(join(stage, 'etc/hostname'), 'localhost\n');
  await fsp.mkdir(join(stage, 'tmp'), { recursive: true, mode: 0o1777 });
  await fsp.chmod(join(stage, 'tmp'), 0o1777);
  // Why: dash ships the binary; the /bin/sh link is normally made by its maintainer script.
  const sh = join(stage, 'bin/sh');
  if (!(await lexists(sh)) && (await exists(join(stage, 'bin/dash')))) await fsp.symlink('dash', sh);
}

/** Links `java` the way update-alternatives would, so that `java` is on PATH. */
export function linkJava(jvm = 'java-17-openjdk-amd64'): (stage: string) => Promise<void> {
  return async (stage) => {
    await fsp.mkdir(join(stage, 'etc/alternatives'), { recursive: true });
    await fsp.mkdir(join(stage, 'usr/bin'), { recursive: true });
    await fsp.symlink(`/usr/lib/jvm/${jvm}/bin/java`, join(stage, 'etc/alternatives/java'));
    await fsp.symlink('/etc/alternatives/java', join(stage, 'usr/bin/java'));
  };
}

/** Links `node` to `nodejs` when the package only ships the latter. */
export async function linkNode(stage: string): Promise<void> {
  const node = join(stage, 'usr/bin/node');
  if (!(await lexists(node)) && (await exists(join(stage, 'usr/bin/nodejs')))) await fsp.symlink('nodejs', node);
}

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(() => true, () => false);
}

async function lexists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(() => true, () => false);
}
