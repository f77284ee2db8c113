import type { Command } from 'commander';
import type { Digest } from '../digest/digest.js';
import { action, type CliContext } from './context.js';
import { humanSize, shortDigest, table } from './format.js';

/** One block of the store and who shares it. */
export interface BlockShare {
  digest: Digest;
  size: number;
  path?: string;
  images: string[];
  teams: string[];
}

export interface StoreStats {
  images: string[];
  teams: string[];
  blocks: BlockShare[];
  /** Blocks held by two images or more, and their bytes (stored once). */
  sharedBlocks: number;
  sharedBlockBytes: number;
  /** Every image's standard layers, uncompressed, each image counted in full. */
  layerBytes: number;
  /** The same with identical layers (same diff_id) counted once, as a layer-sharing store keeps them. */
  distinctLayerBytes: number;
  /** What the store holds for these images: distinct layer blobs, blocks and configs. */
  storeBytes: number;
  /** layerBytes - storeBytes, and distinctLayerBytes - storeBytes. */
  savedBytes: number;
  savedVsLayerSharing: number;
}

/**
 * The team an image belongs to: the first component of its repository name ("payments" for
 * payments/api:1; a registry host such as registry.local:5000/ is skipped), or the repository
 * name itself when it has one component ("api" for api:1).
 */
export function teamOf(name: string): string {
  const colon = name.lastIndexOf(':');
  const repo = colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
  const parts = repo.split('/');
  if (parts.length > 1 && (/[.:]/.test(parts[0]) || parts[0] === 'localhost')) parts.shift();
  return parts[0];
}

/** Sharing of blocks and bytes saved, over `names` (default every image of the store). */
export async function storeStats(names: string[]): Promise<StoreStats> {
  const { Store } = await import('../store/store.js');
  const { checkNameTag } = await import('../oci/reference.js');
  const { Annotation } = await import('../oci/media-types.js');
  const store = Store.open();
  if (names.length === 0) names = (await store.images()).map((i) => i.name);
  const blocks = new Map<Digest, BlockShare>();
  const blobs = new Map<Digest, number>();
  const diffIds = new Map<string, number>();
  let layerBytes = 0;
  for (const name of names) {
    checkNameTag(name, 'stats');
    const img = await store.openImage(name);
    try {
      blobs.set(img.manifest.config.digest, img.manifest.config.size);
      for (const [i, l] of img.manifest.layers.entries()) {
        const std = Number(l.annotations?.[Annotation.layerSize] ?? l.size);
        layerBytes += std;
        diffIds.set(img.config.rootfs.diff_ids[i], std);
        blobs.set(l.digest, l.size);
      }
      for (const b of img.manifest.blocks ?? []) {
        blobs.set(b.digest, b.size);
        let s = blocks.get(b.digest);
        if (!s) blocks.set(b.digest, (s = { digest: b.digest, size: b.size, path: b.annotations?.[Annotation.blockPath], images: [], teams: [] }));
        if (!s.images.includes(name)) s.images.push(name);
        const team = teamOf(name);
        if (!s.teams.includes(team)) s.teams.push(team);
      }
    } finally {
      await img.close();
    }
  }
  const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);
  const list = [...blocks.values()].sort((a, b) => b.images.length - a.images.length || b.size - a.size || (a.digest < b.digest ? -1 : 1));
  const shared = list.filter((b) => b.images.length > 1);
  const storeBytes = sum(blobs.values());
  const distinctLayerBytes = sum(diffIds.values());
  return {
    images: names,
    teams: [...new Set(names.map(teamOf))].sort(),
    blocks: list,
    sharedBlocks: shared.length,
    sharedBlockBytes: sum(shared.map((b) => b.size)),
    layerBytes,
    distinctLayerBytes,
    storeBytes,
    savedBytes: layerBytes - storeBytes,
    savedVsLayerSharing: distinctLayerBytes - storeBytes,
  };
}

export function printStats(s: StoreStats, ctx: CliContext, top = 20): void {
  const rows = [['BLOCK', 'SIZE', 'IMAGES', 'TEAMS', 'PATH']];
  for (const b of s.blocks.slice(0, top)) rows.push([shortDigest(b.digest), humanSize(b.size), String(b.images.length), String(b.teams.length), b.path ?? '']);
  if (s.blocks.length) ctx.say(table(rows));
  if (s.blocks.length > top) ctx.say(`... ${s.blocks.length - top} more blocks (--json lists them all)`);
  const n = (k: number, w: string) => `${k} ${w}${k === 1 ? '' : 's'}`;
  ctx.say(`\n${n(s.images.length, 'image')} of ${n(s.teams.length, 'team')}; ${n(s.blocks.length, 'block')}, ${s.sharedBlocks} shared by two images or more (${humanSize(s.sharedBlockBytes)} stored once)`);
  ctx.say(`every image's layers: ${humanSize(s.layerBytes)}; identical layers once: ${humanSize(s.distinctLayerBytes)}; this store: ${humanSize(s.storeBytes)}`);
  ctx.say(`saved: ${humanSize(Math.max(0, s.savedBytes))} against every image's layers, ${s.savedVsLayerSharing < 0 ? '-' : ''}${humanSize(Math.abs(s.savedVsLayerSharing))} against sharing identical layers`);
}

export function registerStatsCommand(program: Command): void {
  program
    .command('stats')
    .description('how many images and teams share each block, and the bytes the store saves')
    .argument('[names...]', 'NAME:TAG of store images (default: every image in the store)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
A team is the first component of an image's repository name (payments for payments/api:1), or
the name itself when it has one component (api for api:1).

Examples:
  blockport stats
  blockport stats payments/api:2 billing/api:7 --json | jq '.blocks[] | select(.teams | length > 1)'`)
    .action(action((names: string[]) => storeStats(names), (r, ctx) => printStats(r, ctx)));
}
