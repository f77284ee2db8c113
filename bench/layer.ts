// Layer tars made by GNU tar from a staged folder, in a deterministic form, cached by recipe key.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';
import { keyOf } from './lockfile.js';

/** 2024-01-01T00:00:00Z: every newer mtime in a layer is clamped to it. */
export const EPOCH = 1704067200;
/** The same moment as an RFC 3339 string, for image configs and history. */
export const EPOCH_ISO = new Date(EPOCH * 1000).toISOString().replace('.000Z', 'Z');

// Bump when the way layers are made changes, so that cached tars are rebuilt.
const RECIPE_REV = 1;

/** What a layer holds, counted on the staged folder. */
export interface LayerStats {
  /** Bytes of regular file content (each hard-linked file once). */
  bytes: number;
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  jars: number;
}

/** A finished layer tar and what it holds. */
export interface BuiltLayer {
  name: string;
  tar: string;
  key: string;
  tarBytes: number;
  stats: LayerStats;
  /** One line saying what the layer is (becomes the history `created_by`). */
  note: string;
}

/** Fills the (empty) stage folder; returns the layer's one-line note. */
export type LayerFill = (stage: string) => Promise<string>;

/** The layer `name` in `dir`, rebuilt only when `recipe` differs from the cached one. */
export async function buildLayer(dir: string, name: string, recipe: unknown, fill: LayerFill): Promise<BuiltLayer> {
  const key = keyOf({ rev: RECIPE_REV, recipe });
  const tar = join(dir, `${name}.tar`);
  const meta = join(dir, `${name}.json`);
  const cached = await readMeta(meta);
  if (cached?.key === key && (await sizeOf(tar)) === cached.tarBytes) return { ...cached, tar };
  const stage = join(dir, `.stage-${name}`);
  await fsp.rm(stage, { recursive: true, force: true });
  await fsp.mkdir(stage, { recursive: true });
  try {
    const note = await fill(stage);
    const stats = await statTree(stage);
    await tarFolder(stage, `${tar}.tmp`);
    await fsp.rename(`${tar}.tmp`, tar);
    const layer: BuiltLayer = { name, tar, key, tarBytes: (await sizeOf(tar)) ?? 0, stats, note };
    await fsp.writeFile(meta, JSON.stringify(layer, null, 1) + '\n');
    return layer;
  } finally {
    await fsp.rm(stage, { recursive: true, force: true });
  }
}

/** Tars the contents of `folder` (not the folder itself) into `out` with GNU tar, deterministically. */
export async function tarFolder(folder: string, out: string): Promise<void> {
  const top = (await fsp.readdir(folder)).sort();
  if (top.length === 0) throw new Error(`${folder}: nothing to put in a layer`);
  await run('tar', [
    '--sort=name',
    '--numeric-owner',
    '--format=posix',
    // Why: GNU tar's default PAX header names carry the process id, and atime/ctime vary by run.
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
    `--mtime=@${EPOCH}`,
    '--clamp-mtime',
    '-C', folder,
    '-cf', out,
    '--',
    ...top,
  ]);
}

/** Counts what `root` holds (regular files, folders, symlinks, extra hard links, jars). */
export async function statTree(root: string): Promise<LayerStats> {
  const s: LayerStats = { bytes: 0, files: 0, dirs: 0, symlinks: 0, hardlinks: 0, jars: 0 };
  const seen = new Set<number>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        s.dirs++;
        await walk(p);
      } else if (e.isSymbolicLink()) s.symlinks++;
      else if (e.isFile()) {
        const st = await fsp.lstat(p);
        if (st.nlink > 1 && seen.has(st.ino)) {
          s.hardlinks++;
          continue;
        }
        if (st.nlink > 1) seen.add(st.ino);
        s.files++;
        s.bytes += st.size;
        if (e.name.endsWith('.jar')) s.jars++;
      }
    }
  };
  await walk(root);
  return s;
}

async function readMeta(file: string): Promise<BuiltLayer | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as BuiltLayer;
  } catch {
    return undefined;
  }
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await fsp.stat(file)).size;
  } catch {
    return undefined;
  }
}
