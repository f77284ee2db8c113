import { promises as fsp } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PRESETS, parseSize, type Preset } from '../blocks/rules.js';
import { BlockportError } from '../errors.js';
import type { Compression } from '../oci/media-types.js';
import type { LayerFile } from './source-tree.js';

/** One layer to build: the files it holds, in one tar. */
export interface BuildLayer {
  /** Shown in the history entry (`comment`) and in the output; default: the first DEST. */
  name?: string;
  files: LayerFile[];
}

/**
 * What `build` makes: the settings of `blockport build` and of a `blockport.json` file.
 * Relative `src` paths are taken from `baseDir` (the config file's folder, or the working folder).
 */
export interface BuildConfig {
  /** Base image: any reference (`NAME:TAG`, `oci:`, `oci-archive:`, `docker-archive:`, `docker://`), or `scratch`. */
  from: string;
  /** Layers on top of the base, in order; each one tar. */
  layers: BuildLayer[];
  /** A plain string is one argument; an array is used as is. */
  entrypoint?: string | string[];
  cmd?: string | string[];
  /** Added to (or replacing by name) the base image's environment. */
  env?: Record<string, string>;
  workdir?: string;
  user?: string;
  labels?: Record<string, string>;
  /** Ports: `8080`, `8080/tcp`, `53/udp`. */
  expose?: Array<string | number>;
  /** What becomes a block, as `blockify --preset`: java, node, python, auto. */
  preset?: Preset[];
  include?: string[];
  exclude?: string[];
  /** Files at or above this size become blocks (bytes, or "1M"); default 1 MiB. */
  minSize?: number | string;
  /** OS/ARCH[/VARIANT]; default the base image's, else linux and this machine's architecture. */
  platform?: string;
  /** Owner of every added file, "UID[:GID]" (numeric); default 0:0. */
  chown?: string;
  /** Where the image goes: a store `NAME:TAG` or any writable reference. */
  to?: string;
  /** Compression of the layers written: none (default), gzip (default for docker://), zstd. */
  compress?: Compression;
  /** Base folder for relative `src` paths (default: the working folder). */
  baseDir?: string;
}

const KEYS = ['from', 'layers', 'add', 'entrypoint', 'cmd', 'env', 'workdir', 'user', 'labels', 'expose', 'preset', 'include', 'exclude', 'minSize', 'platform', 'chown', 'tag', 'to', 'compress'] as const;

function bad(where: string, msg: string): BlockportError {
  return new BlockportError('EUSAGE', `${where}: ${msg}`, { subject: where });
}

function str(v: unknown, where: string, key: string): string {
  if (typeof v !== 'string' || v === '') throw bad(where, `"${key}" must be a non-empty string`);
  return v;
}

function strings(v: unknown, where: string, key: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw bad(where, `"${key}" must be an array of strings`);
  return v as string[];
}

/** A command: a plain word is one argument, a JSON array is used as is. */
export function parseCommand(v: unknown, where: string, key: string): string[] {
  if (Array.isArray(v)) return strings(v, where, key);
  const s = str(v, where, key);
  if (!s.trimStart().startsWith('[')) return [s];
  let parsed: unknown;
  try {
    parsed = JSON.parse(s);
  } catch {
    throw bad(where, `"${key}" looks like a JSON array but is not valid JSON: ${s}`);
  }
  return strings(parsed, where, key);
}

/** "SRC:DEST", split at the last colon (DEST is an image path and never holds one). */
export function parseAdd(s: string, where: string): LayerFile {
  const i = s.lastIndexOf(':');
  if (i <= 0 || i === s.length - 1) throw bad(where, `${JSON.stringify(s)} must be SRC:DEST (e.g. target/lib:/app/lib)`);
  return { src: s.slice(0, i), dest: s.slice(i + 1) };
}

/** "NAME=SRC:DEST,SRC:DEST" (--layer). */
export function parseLayerFlag(s: string, where: string): BuildLayer {
  const eq = s.indexOf('=');
  if (eq <= 0) throw bad(where, `${JSON.stringify(s)} must be NAME=SRC:DEST[,SRC:DEST...]`);
  return { name: checkName(s.slice(0, eq), where), files: s.slice(eq + 1).split(',').map((f) => parseAdd(f, where)) };
}

function checkName(n: string, where: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(n)) throw bad(where, `layer name ${JSON.stringify(n)} must be letters, digits, ".", "_" or "-"`);
  return n;
}

/** "K=V" pairs into a map (later ones win). */
export function parsePairs(list: string[], where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i <= 0) throw bad(where, `${JSON.stringify(kv)} must be KEY=VALUE`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function record(v: unknown, where: string, key: string): Record<string, string> {
  if (!v || typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw bad(where, `"${key}" must be an object of strings ({"KEY": "VALUE"})`);
  }
  return v as Record<string, string>;
}

export function parsePresetList(v: string[], where: string): Preset[] {
  const out = v.flatMap((p) => p.split(',')).map((p) => p.trim()).filter(Boolean);
  for (const p of out) if (!PRESETS.includes(p as Preset)) throw bad(where, `unknown preset ${JSON.stringify(p)} (choose from ${PRESETS.join(', ')})`);
  return out as Preset[];
}

function layerOf(v: unknown, where: string): BuildLayer {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad(where, 'must be {"name": ..., "files": [...]}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'name' && k !== 'files') throw bad(where, `unknown key "${k}" (a layer has "name" and "files")`);
  if (!Array.isArray(o.files) || o.files.length === 0) throw bad(where, '"files" must be a non-empty array');
  const files = o.files.map((f, i) => {
    const at = `${where}.files[${i}]`;
    if (typeof f === 'string') return parseAdd(f, at);
    const x = f as Record<string, unknown>;
    if (!x || typeof x !== 'object' || Object.keys(x).some((k) => k !== 'src' && k !== 'dest')) throw bad(at, 'must be "SRC:DEST" or {"src": ..., "dest": ...}');
    return { src: str(x.src, at, 'src'), dest: str(x.dest, at, 'dest') };
  });
  return { ...(o.name === undefined ? {} : { name: checkName(str(o.name, where, 'name'), where) }), files };
}

/**
 * Checks a parsed blockport.json (or a library caller's object) and returns it as a BuildConfig;
 * every problem is one line naming the key. `add` entries ("SRC:DEST") become one layer each,
 * after `layers`.
 */
export function validateConfig(value: unknown, where: string): Partial<BuildConfig> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw bad(where, 'must be a JSON object');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(k)) throw bad(where, `unknown key "${k}" (known: ${KEYS.join(', ')})`);
  }
  const c: Partial<BuildConfig> = {};
  if (o.from !== undefined) c.from = str(o.from, where, 'from');
  if (o.layers !== undefined) {
    if (!Array.isArray(o.layers)) throw bad(where, '"layers" must be an array');
    c.layers = o.layers.map((l, i) => layerOf(l, `${where}: layers[${i}]`));
  }
  if (o.add !== undefined) c.layers = [...(c.layers ?? []), ...strings(o.add, where, 'add').map((a) => ({ files: [parseAdd(a, `${where}: add`)] }))];
  if (o.entrypoint !== undefined) c.entrypoint = parseCommand(o.entrypoint, where, 'entrypoint');
  if (o.cmd !== undefined) c.cmd = parseCommand(o.cmd, where, 'cmd');
  if (o.env !== undefined) c.env = record(o.env, where, 'env');
  if (o.labels !== undefined) c.labels = record(o.labels, where, 'labels');
  if (o.workdir !== undefined) c.workdir = str(o.workdir, where, 'workdir');
  if (o.user !== undefined) c.user = str(o.user, where, 'user');
  if (o.expose !== undefined) {
    if (!Array.isArray(o.expose) || o.expose.some((p) => typeof p !== 'string' && typeof p !== 'number')) throw bad(where, '"expose" must be an array of ports');
    c.expose = o.expose as Array<string | number>;
  }
  if (o.preset !== undefined) c.preset = parsePresetList(typeof o.preset === 'string' ? [o.preset] : strings(o.preset, where, 'preset'), where);
  if (o.include !== undefined) c.include = strings(o.include, where, 'include');
  if (o.exclude !== undefined) c.exclude = strings(o.exclude, where, 'exclude');
  if (o.minSize !== undefined) {
    if (typeof o.minSize !== 'number' && typeof o.minSize !== 'string') throw bad(where, '"minSize" must be a number of bytes or a size like "1M"');
    c.minSize = o.minSize;
  }
  if (o.platform !== undefined) c.platform = str(o.platform, where, 'platform');
  if (o.chown !== undefined) c.chown = str(o.chown, where, 'chown');
  if (o.tag !== undefined && o.to !== undefined) throw bad(where, 'give "tag" or "to", not both');
  if (o.tag !== undefined) c.to = str(o.tag, where, 'tag');
  if (o.to !== undefined) c.to = str(o.to, where, 'to');
  if (o.compress !== undefined) {
    if (o.compress !== 'none' && o.compress !== 'gzip' && o.compress !== 'zstd') throw bad(where, '"compress" must be "none", "gzip" or "zstd"');
    c.compress = o.compress;
  }
  return c;
}

/** Reads and checks a blockport.json; its relative paths are taken from its own folder. */
export async function readConfigFile(file: string): Promise<Partial<BuildConfig>> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new BlockportError('ENOTFOUND', `--config ${file}: no such file`, { subject: file });
    throw new BlockportError('EIO', `--config ${file}: ${e.message}`, { subject: file });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new BlockportError('EUSAGE', `${file}: invalid JSON (${(err as Error).message})`, { subject: file });
  }
  const c = validateConfig(json, file);
  // resolved now, so flags that replace other settings keep these paths right
  const dir = dirname(resolve(file));
  c.layers = c.layers?.map((l) => ({ ...l, files: l.files.map((f) => ({ src: resolve(dir, f.src), dest: f.dest })) }));
  return c;
}

/** The size rule as bytes. */
export function minSizeOf(v: number | string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new BlockportError('EUSAGE', `minSize ${v} must be a whole number of bytes`);
    return v;
  }
  return parseSize(v);
}
