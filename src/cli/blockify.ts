import { blockify, type BlockifyResult } from '../blocks/blockify.js';
import { PRESETS, parseSize, rulesFor, type Preset } from '../blocks/rules.js';
import { BlockportError } from '../errors.js';
import { parsePlatform } from '../oci/resolve.js';
import { openImage, openWriter, parseRef, transportOf } from '../oci/transport.js';
import { carryReferrers, pendingReferrers } from '../referrers/carry.js';
import type { ReferrerTally } from '../referrers/copy.js';
import type { CliContext } from './context.js';
import { humanSize, layerBytes, parseCompression, shortDigest, table } from './format.js';

export interface BlockifyFlags {
  preset?: string[];
  minSize?: string;
  include?: string[];
  exclude?: string[];
  compress?: string;
  /** false: leave the source's signatures, SBOMs and attestations behind. */
  referrers?: boolean;
  platform?: string[];
  /** false with --no-original. */
  original?: boolean;
}

export function parsePresets(values: string[] = []): Preset[] {
  const out = values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  for (const p of out) {
    if (!PRESETS.includes(p as Preset)) throw new BlockportError('EUSAGE', `unknown preset ${JSON.stringify(p)} (choose from ${PRESETS.join(', ')})`);
  }
  return out as Preset[];
}

export async function blockifyCommand(src: string, dst: string, flags: BlockifyFlags, ctx: CliContext): Promise<BlockifyResult & { source: string; destination: string; referrers?: ReferrerTally }> {
  const rules = rulesFor(parsePresets(flags.preset), {
    minSize: flags.minSize === undefined ? undefined : parseSize(flags.minSize),
    include: flags.include,
    exclude: flags.exclude,
  });
  // a bad destination is a usage error before any work. Block-form layers stay uncompressed
  // locally: bundles compress them with zstd and delta them against the previous version, which
  // gzip would defeat; registries get gzip, as every registry user expects.
  const target = parseRef(dst);
  const compression = parseCompression(flags.compress, transportOf(target).layerCompression);
  // every platform is blockified (or --platform's): open at one of them, the host's when listed
  const platforms = flags.platform?.map(parsePlatform);
  const reader = await openImage(src, undefined, { platform: platforms?.[0] ?? 'any' });
  try {
    // the source's signatures and SBOMs are checked before any work, written once the image is
    const pending = flags.referrers === false ? undefined : await pendingReferrers(reader);
    const writer = await openWriter(target, dst);
    const total = layerBytes(reader.manifest);
    const bar = ctx.progress('blockify');
    try {
      const result = await blockify(reader, writer, {
        rules,
        compression,
        platforms,
        original: flags.original,
        onProgress: (p) => bar.update(p.bytes, Math.max(total, p.bytes), `layer ${p.layer + 1}/${p.layers}`),
      });
      const referrers = await carryReferrers(pending, writer);
      return { source: src, destination: dst, ...result, ...(referrers ? { referrers } : {}) };
    } finally {
      bar.stop();
    }
  } finally {
    await reader.close();
  }
}

export function printBlockify(r: Awaited<ReturnType<typeof blockifyCommand>>, ctx: CliContext): void {
  // several platforms: their layers are numbered per platform, so the platform leads each row
  const multi = Boolean(r.platforms);
  const rows = [[...(multi ? ['PLATFORM'] : []), 'LAYER', 'DIFF_ID', 'ENTRIES', 'BLOCKS', 'NEW', 'MOVED', 'LAYER IN', 'LAYER OUT']];
  for (const l of r.layers) {
    rows.push([...(multi ? [l.platform ?? ''] : []), String(l.index + 1), shortDigest(l.diffId), String(l.entries), String(l.blocks), String(l.newBlocks), humanSize(l.blockBytes), humanSize(l.inputSize), l.blockified ? humanSize(l.outputSize) : 'unchanged']);
  }
  const tin = r.layers.reduce((n, l) => n + l.inputSize, 0);
  const tout = r.layers.reduce((n, l) => n + l.outputSize, 0);
  const bsize = r.blocks.reduce((n, b) => n + b.size, 0);
  ctx.say(table(rows));
  ctx.say(`\n${r.source} -> ${r.destination}`);
  ctx.say(`layers ${humanSize(tin)} -> ${humanSize(tout)}; ${r.blocks.length} blocks (${humanSize(bsize)}), ${r.layers.reduce((n, l) => n + l.newBlocks, 0)} new`);
  ctx.say(`image ${r.top.digest}`);
  for (const p of r.platforms ?? []) ctx.say(`${p.platform}: block-form manifest ${p.manifest.digest}`);
  for (const l of r.layers) {
    const name = `${l.platform ? `${l.platform} ` : ''}layer ${l.index + 1}`;
    if (l.recipe) ctx.say(`${name}: its compressed blob is re-created by ${l.recipe}`);
    if (l.unreproducible) ctx.say(`${name}: its compressed blob cannot be re-created (${l.unreproducible}); materialize writes a new one, so the manifest digest will differ from the source's`);
  }
  if (r.referrers) ctx.say(`referrers: ${r.referrers.referrers} signature(s), SBOM(s) or attestation(s) of the source copied beside it (${r.referrers.blobs} blobs)`);
}
