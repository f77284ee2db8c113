import picomatch from 'picomatch';
import { BlockportError } from '../errors.js';
import { IMPORT_PREFIX } from './import-entry.js';

export type Preset = 'java' | 'node' | 'python' | 'auto';
export const PRESETS: readonly Preset[] = ['java', 'node', 'python', 'auto'];

/** What becomes a block (docs/spec.md, "Blockify rules and presets"). */
export interface BlockRules {
  /** Regular files at or above this size become blocks. */
  minSize: number;
  include: string[];
  exclude: string[];
  /** Folder rules: node_modules packages, python distributions. */
  folders: Array<'node' | 'python'>;
}

export const DEFAULT_MIN_SIZE = 1 << 20;

const PRESET_RULES: Record<Preset, Pick<BlockRules, 'include' | 'folders'>> = {
  java: { include: ['**/*.jar', '**/*.war', '**/*.ear'], folders: [] },
  node: { include: [], folders: ['node'] },
  python: { include: ['**/*.whl'], folders: ['python'] },
  auto: { include: [], folders: [] },
};

/** Parses "1048576", "512K", "1M", "2G" (powers of 1024). */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(s.trim());
  if (!m) throw new BlockportError('EUSAGE', `invalid size ${JSON.stringify(s)} (e.g. 1048576, 512K, 1M, 4G)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

export function rulesFor(presets: Preset[], opts: { minSize?: number; include?: string[]; exclude?: string[] } = {}): BlockRules {
  const r: BlockRules = { minSize: opts.minSize ?? DEFAULT_MIN_SIZE, include: [...(opts.include ?? [])], exclude: [...(opts.exclude ?? [])], folders: [] };
  for (const p of presets) {
    r.include.push(...PRESET_RULES[p].include);
    r.folders.push(...PRESET_RULES[p].folders);
  }
  return r;
}

/** Decides, entry by entry, what becomes a block. */
export class RuleMatcher {
  private readonly inc: (p: string) => boolean;
  private readonly exc: (p: string) => boolean;

  constructor(readonly rules: BlockRules) {
    const opts = { dot: true };
    // a glob without "/" matches the basename anywhere, as .gitignore users expect
    const compile = (globs: string[]) => {
      const full = globs.filter((g) => g.includes('/')).map((g) => g.replace(/^\/+/, ''));
      const base = globs.filter((g) => !g.includes('/'));
      const m1 = full.length ? picomatch(full, opts) : () => false;
      const m2 = base.length ? picomatch(base, { ...opts, basename: true }) : () => false;
      return (p: string) => m1(p) || m2(p);
    };
    this.inc = compile(rules.include);
    this.exc = compile(rules.exclude);
  }

  excluded(path: string): boolean {
    return this.exc(path);
  }

  /** Whether a regular file of `size` bytes at clean `path` becomes a file block. */
  fileIsBlock(path: string, size: number): boolean {
    if (basename(path).startsWith(IMPORT_PREFIX)) return true; // never ambiguous with an import entry
    if (this.exc(path)) return false;
    return size >= this.rules.minSize || this.inc(path);
  }

  /** The folder block `path` falls in (the folder itself included), if a folder rule selects one. */
  folderOf(path: string, isDir: boolean): string | undefined {
    const parts = path.split('/');
    for (let i = 0; i < parts.length; i++) {
      const folder = this.folderAt(parts, i);
      if (folder === undefined) continue;
      const depth = folder.split('/').length;
      if (parts.length === depth && !isDir) return undefined; // a file right there is not a folder
      if (this.exc(folder)) return undefined;
      return folder;
    }
    return undefined;
  }

  /** The folder rooted at parts[i] when a rule makes parts[0..i] a package folder. */
  private folderAt(parts: string[], i: number): string | undefined {
    const prev = parts[i - 1];
    const name = parts[i];
    if (!name || name.startsWith('.') || name === '__pycache__') return undefined;
    if (this.rules.folders.includes('node')) {
      if (prev === 'node_modules' && !name.startsWith('@')) return parts.slice(0, i + 1).join('/');
      if (parts[i - 2] === 'node_modules' && prev?.startsWith('@')) return parts.slice(0, i + 1).join('/');
    }
    if (this.rules.folders.includes('python') && (prev === 'site-packages' || prev === 'dist-packages')) {
      return parts.slice(0, i + 1).join('/');
    }
    return undefined;
  }
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}
