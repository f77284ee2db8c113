// Images assembled by umoci from the layer tars, exported by skopeo as docker-archives.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';
import { EPOCH_ISO, type BuiltLayer } from './layer.js';
import { keyOf } from './lockfile.js';

/** The runtime part of an image config. */
export interface RunConfig {
  env: string[];
  cmd: string[];
  workingDir: string;
  labels: Record<string, string>;
}

/** One image to build: its tag, its layers bottom first, its config. */
export interface ImageSpec {
  tag: string;
  layers: BuiltLayer[];
  config: RunConfig;
}

/** A layer as the built manifest lists it. */
export interface ManifestLayer {
  digest: string;
  size: number;
}

/** Builds tags in one OCI layout with umoci, reusing the longest already built layer prefix. */
export class LayoutBuilder {
  // Why: umoci gzips every layer it adds; building a tag on a temporary tag that already holds the
  // same lower layers saves compressing the shared base layers again for each version.
  private readonly prefixes = new Map<string, string>();
  private temp = 0;

  constructor(
    readonly layout: string,
    private readonly stampDir: string,
  ) {}

  /** Creates the layout when missing. */
  async init(): Promise<void> {
    await fsp.mkdir(this.stampDir, { recursive: true });
    if (await exists(join(this.layout, 'index.json'))) return;
    await run('umoci', ['init', '--layout', this.layout]);
  }

  /** Builds `spec` unless the same recipe is already tagged; true when it built. */
  async build(spec: ImageSpec): Promise<boolean> {
    const key = keyOf({ layers: spec.layers.map((l) => l.key), config: spec.config });
    const stamp = join(this.stampDir, `${spec.tag}.image`);
    if ((await readText(stamp)) === key && (await this.tags()).includes(spec.tag)) return false;
    let from = await this.prefix([]);
    for (let i = 0; i < spec.layers.length; i++) from = await this.prefix(spec.layers.slice(0, i + 1), from);
    if ((await this.tags()).includes(spec.tag)) await run('umoci', ['rm', '--image', `${this.layout}:${spec.tag}`]);
    await run('umoci', ['config', '--image', `${this.layout}:${from}`, '--tag', spec.tag, '--no-history', ...configArgs(spec.config)]);
    await fsp.writeFile(stamp, key);
    return true;
  }

  /** Removes the temporary prefix tags, then the blobs no tag uses any more (older builds'). */
  async cleanup(): Promise<void> {
    const temps = (await this.tags()).filter((t) => t.startsWith('bench-tmp-'));
    for (const t of temps) await run('umoci', ['rm', '--image', `${this.layout}:${t}`]);
    this.prefixes.clear();
    if (temps.length > 0) await run('umoci', ['gc', '--layout', this.layout]);
  }

  /** The tags the layout holds. */
  async tags(): Promise<string[]> {
    const out = await run('umoci', ['ls', '--layout', this.layout]);
    return out.split('\n').map((s) => s.trim()).filter(Boolean);
  }

  private async prefix(layers: BuiltLayer[], from?: string): Promise<string> {
    const key = keyOf(layers.map((l) => l.key));
    const known = this.prefixes.get(key);
    if (known) return known;
    const tag = `bench-tmp-${process.pid}-${++this.temp}`;
    if (from === undefined) await run('umoci', ['new', '--image', `${this.layout}:${tag}`]);
    else {
      const top = layers[layers.length - 1];
      await run('umoci', [
        'raw', 'add-layer', '--image', `${this.layout}:${from}`, '--tag', tag,
        '--history.created', EPOCH_ISO, '--history.created_by', top.note, '--history.comment', top.name,
        top.tar,
      ], { timeoutMs: 20 * 60_000 });
    }
    this.prefixes.set(key, tag);
    return tag;
  }
}

/** Writes `tag` as a docker-archive (as `docker save` would) at `file`, named `name`. */
export async function exportArchive(layout: string, tag: string, file: string, name: string, stampDir: string): Promise<boolean> {
  const digest = await manifestDigest(layout, tag);
  const key = keyOf({ digest, name });
  const stamp = join(stampDir, `${tag}.archive`);
  if ((await readText(stamp)) === key && (await exists(file))) return false;
  const tmp = `${file}.tmp`;
  await fsp.rm(tmp, { force: true });
  await run('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${layout}:${tag}`, `docker-archive:${tmp}:${name}`], { timeoutMs: 20 * 60_000 });
  await fsp.rename(tmp, file);
  await fsp.writeFile(stamp, key);
  return true;
}

/** The manifest digest tagged `tag` in the layout's index.json. */
export async function manifestDigest(layout: string, tag: string): Promise<string> {
  const index = JSON.parse(await fsp.readFile(join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const m = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) throw new Error(`${layout}: no image tagged ${tag}`);
  return m.digest;
}

/** The (compressed) layers of the image tagged `tag`, as its manifest lists them. */
export async function manifestLayers(layout: string, tag: string): Promise<ManifestLayer[]> {
  const digest = await manifestDigest(layout, tag);
  const path = join(layout, 'blobs', ...digest.split(':'));
  const manifest = JSON.parse(await fsp.readFile(path, 'utf8')) as { layers: ManifestLayer[] };
  return manifest.layers.map((l) => ({ digest: l.digest, size: l.size }));
}

function configArgs(c: RunConfig): string[] {
  const args = ['--created', EPOCH_ISO, '--author', 'blockport bench', '--config.workingdir', c.workingDir];
  for (const e of c.env) args.push('--config.env', e);
  for (const a of c.cmd) args.push('--config.cmd', a);
  for (const [k, v] of Object.entries(c.labels)) args.push('--config.label', `${k}=${v}`);
  return args;
}

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(() => true, () => false);
}

async function readText(p: string): Promise<string | undefined> {
  return fsp.readFile(p, 'utf8').catch(() => undefined);
}
