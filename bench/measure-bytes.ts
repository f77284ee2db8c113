// The bytes a receiver gets under the strategies that do not involve blockport: the whole image
// compressed, the layers `docker pull` fetches, and the --patch-from lower bound.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { countOutput, fileSha256, spawnText, type SizeCache } from './measure-exec.js';

/** Full-image compression commands; FILE stands for the docker-archive. */
export const FULL_GZIP = ['gzip', '-6', '-c', 'FILE'];
export const FULL_ZSTD = ['zstd', '-19', '-T0', '--long=27', '-q', '-c', 'FILE'];
/** The lower bound: the new docker-archive as a zstd patch against the old one. */
export const PATCH_FROM = ['zstd', '--long=31', '-19', '-q', '-c', '--patch-from=OLD', 'NEW'];

interface OciManifest {
  config: { digest: string };
  layers: { digest: string; size: number }[];
}

async function readBlobJson<T>(layout: string, digest: string): Promise<T> {
  return JSON.parse(await fsp.readFile(join(layout, 'blobs', ...digest.split(':')), 'utf8')) as T;
}

/** The manifest tagged `tag` in an OCI layout, with its config's diff_ids. */
export async function layoutImage(layout: string, tag: string): Promise<{ layers: { digest: string; size: number; diffId: string }[] }> {
  const index = await readBlobJsonAt<{ manifests: { digest: string; annotations?: Record<string, string> }[] }>(join(layout, 'index.json'));
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!desc) throw new Error(`${layout}: no image tagged ${tag}`);
  const manifest = await readBlobJson<OciManifest>(layout, desc.digest);
  const config = await readBlobJson<{ rootfs: { diff_ids: string[] } }>(layout, manifest.config.digest);
  return { layers: manifest.layers.map((l, i) => ({ digest: l.digest, size: l.size, diffId: config.rootfs.diff_ids[i] })) };
}

async function readBlobJsonAt<T>(file: string): Promise<T> {
  return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
}

/** What `docker pull` fetches: the compressed size of each layer of `to` whose diff_id `from` lacks. */
export async function layerLevel(layout: string, from: string, to: string): Promise<{ bytes: number; layers: number; of: number }> {
  const have = new Set((await layoutImage(layout, from)).layers.map((l) => l.diffId));
  const next = (await layoutImage(layout, to)).layers;
  const fetched = next.filter((l) => !have.has(l.diffId));
  return { bytes: fetched.reduce((n, l) => n + l.size, 0), layers: fetched.length, of: next.length };
}

/** The first line of `tool --version`, which goes into every cache key. */
export async function toolVersion(tool: string): Promise<string> {
  return (await spawnText(tool, ['--version'])).split('\n')[0].trim();
}

/** Replaces the placeholders of a command template. */
export function fill(template: readonly string[], values: Record<string, string>): string[] {
  return template.map((a) => a.replace(/\b(FILE|OLD|NEW)\b/g, (k) => values[k] ?? k));
}

/** Input files are named by their sha256 in cache keys, so a key means "these bytes, this tool". */
export class Inputs {
  private readonly sums = new Map<string, Promise<string>>();

  sha(file: string): Promise<string> {
    let s = this.sums.get(file);
    if (!s) this.sums.set(file, (s = fileSha256(file)));
    return s;
  }
}

/** A compressed size, measured or taken from the cache. */
export interface Sized {
  bytes: number;
  /** Seconds the compression took when it was measured. */
  seconds: number;
  cached: boolean;
}

/** Runs a size-measuring template on files, through the cache. */
export async function sizeOf(cache: SizeCache, inputs: Inputs, version: string, template: readonly string[], files: Record<string, string>): Promise<Sized> {
  const shas: Record<string, string> = {};
  for (const [k, f] of Object.entries(files)) shas[k] = `sha256:${await inputs.sha(f)}`;
  const key = `${version} | ${fill(template, shas).join(' ')}`;
  const [cmd, ...args] = fill(template, files);
  return cache.get(key, () => countOutput(cmd, args));
}
