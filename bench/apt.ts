// Debian packages for the benchmark images, through apt's own clients only: `apt-get -s` against
// an empty dpkg status resolves what a fresh system would install, `apt-get download` fetches the
// .deb files into the cache, `dpkg-deb -x` unpacks them (no maintainer scripts ever run).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';
import type { ResolutionLock } from './lockfile.js';

/** One Debian binary package at one version. */
export interface Deb {
  name: string;
  version: string;
  arch: string;
}

// Why: resolving against an empty status must neither lock nor rewrite the host's apt caches.
const QUIET_APT = [
  '-o', 'Debug::NoLocking=true',
  '-o', 'Dir::Cache::pkgcache=',
  '-o', 'Dir::Cache::srcpkgcache=',
  '-o', 'APT::Install-Recommends=false',
  '-o', 'APT::Install-Suggests=false',
];

const INST_LINE = /^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([^\]]+)\]\)/;

/** apt-get/apt-cache/dpkg-deb with a download cache and a resolution lock. */
export class Apt {
  readonly debDir: string;

  constructor(
    readonly cacheDir: string,
    private readonly lock: ResolutionLock,
  ) {
    this.debDir = join(cacheDir, 'debs');
  }

  /** What apt would install on an empty system for `wanted` (`name` or `name=version`). */
  closure(wanted: readonly string[]): Promise<Deb[]> {
    return this.lock.remember(`apt-closure ${wanted.join(' ')}`, () => this.simulate(wanted));
  }

  /** Versions of `name` the configured mirror offers, newest first (empty when none). */
  async versions(name: string): Promise<string[]> {
    return (await this.versionsOf([name]))[0];
  }

  /** {@link versions} of many packages, asking apt-cache once for all those not in the lock. */
  async versionsOf(names: readonly string[]): Promise<string[][]> {
    const unknown = names.filter((n) => !this.lock.has(`apt-versions ${n}`));
    if (unknown.length > 0) {
      // Why one call: each apt-cache run may load the whole package index (seconds each).
      const out = await run('apt-cache', ['madison', ...new Set(unknown)]).catch(() => '');
      const rows = out.split('\n').map((l) => l.split('|').map((c) => c.trim())).filter((c) => c.length >= 3);
      for (const n of unknown) {
        // madison lists newest first; a version in two suites is listed twice.
        const vs = [...new Set(rows.filter((c) => c[0] === n).map((c) => c[1]))];
        this.lock.put(`apt-versions ${n}`, vs);
      }
      await this.lock.save();
    }
    return Promise.all(names.map((n) => this.lock.remember<string[]>(`apt-versions ${n}`, async () => [])));
  }

  /** The cached .deb paths of `debs`, downloading the missing ones first. */
  async fetch(debs: readonly Pick<Deb, 'name' | 'version'>[]): Promise<string[]> {
    await fsp.mkdir(this.debDir, { recursive: true });
    let files = await fsp.readdir(this.debDir);
    const missing = debs.filter((d) => !files.some((f) => f.startsWith(debPrefix(d))));
    if (missing.length > 0) {
      await this.download(missing);
      files = await fsp.readdir(this.debDir);
    }
    return debs.map((d) => {
      const f = files.find((x) => x.startsWith(debPrefix(d)) && x.endsWith('.deb'));
      if (!f) throw new Error(`apt-get download gave no file for ${d.name}=${d.version}`);
      return join(this.debDir, f);
    });
  }

  private async download(debs: readonly Pick<Deb, 'name' | 'version'>[]): Promise<void> {
    // Why a private folder: an interrupted download must never look like a cached .deb.
    const part = await fsp.mkdtemp(join(this.debDir, '.partial-'));
    try {
      const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
      const specs = debs.map((d) => `${d.name}=${d.version}`);
      for (let i = 0; i < specs.length; i += 100) {
        await run('apt-get', ['download', '-q', ...sandbox, ...specs.slice(i, i + 100)], { cwd: part, timeoutMs: 15 * 60_000 });
      }
      for (const f of await fsp.readdir(part)) {
        if (f.endsWith('.deb')) await fsp.rename(join(part, f), join(this.debDir, f));
      }
    } finally {
      await fsp.rm(part, { recursive: true, force: true });
    }
  }

  private async simulate(wanted: readonly string[]): Promise<Deb[]> {
    const status = join(this.cacheDir, 'empty-dpkg-status');
    await fsp.mkdir(this.cacheDir, { recursive: true });
    await fsp.writeFile(status, '');
    const out = await run('apt-get', ['-s', '-o', `Dir::State::status=${status}`, ...QUIET_APT, 'install', ...wanted]);
    const debs: Deb[] = [];
    for (const line of out.split('\n')) {
      const m = INST_LINE.exec(line);
      if (m) debs.push({ name: m[1], version: m[2], arch: m[3] });
    }
    if (debs.length === 0) throw new Error(`apt-get resolved nothing for ${wanted.join(' ')}: run apt-get update first`);
    return debs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

/** The start of the file name `apt-get download` gives a package (an epoch colon becomes %3a). */
function debPrefix(d: Pick<Deb, 'name' | 'version'>): string {
  return `${d.name}_${d.version.replace(/:/g, '%3a')}_`;
}

/** The packages of `a` that `b` does not have (by name): what a later install step adds. */
export function minus(a: readonly Deb[], b: readonly Deb[]): Deb[] {
  const names = new Set(b.map((d) => d.name));
  return a.filter((d) => !names.has(d.name));
}

/** Unpacks a .deb's files into `dir` (as `dpkg-deb -x`: no scripts, owners kept when root). */
export async function extractDeb(file: string, dir: string): Promise<void> {
  await run('dpkg-deb', ['-x', file, dir]);
}
