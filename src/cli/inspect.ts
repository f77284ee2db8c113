import { describeImage, type ImageDescription } from '../blocks/describe.js';
import { openImage } from '../oci/transport.js';
import { Store } from '../store/store.js';
import type { CliContext } from './context.js';
import { humanSize, shortDigest, table } from './format.js';

export async function inspectCommand(ref: string): Promise<ImageDescription> {
  const reader = await openImage(ref);
  try {
    return await describeImage(reader);
  } finally {
    await reader.close();
  }
}

export function printInspect(d: ImageDescription, ctx: CliContext): void {
  ctx.say(`image     ${d.ref}`);
  ctx.say(`manifest  ${d.manifestDigest}`);
  ctx.say(`config    ${d.configDigest}`);
  if (d.platform) ctx.say(`platform  ${d.platform.os}/${d.platform.architecture}`);
  if (d.platforms) ctx.say(`platforms ${d.platforms.join(', ')} (shown: the host's)`);
  ctx.say(`form      ${d.blockForm ? `block form: ${d.blocks.count} blocks, ${humanSize(d.blocks.size)}` : 'standard'}`);
  if (d.source) {
    const kept = d.source.manifest ? `the vendor's manifest ${d.source.manifest}${d.source.index ? ` and index ${d.source.index}` : ''}, kept` : "none kept: materialize writes a new manifest";
    ctx.say(`source    ${kept}`);
  }
  ctx.say(`stored    ${humanSize(d.storedSize)}\n`);
  const rows = [['LAYER', 'DIGEST', 'SIZE', 'UNCOMPRESSED', 'IMPORTS', ...(d.source ? ['RECOMPRESS'] : []), 'MEDIA TYPE']];
  for (const l of d.layers) {
    // the compressor that re-creates the vendor's blob; '-' for layers that need none or have none
    const how = l.recompress ?? '-';
    rows.push([String(l.index + 1), shortDigest(l.digest), humanSize(l.size), l.uncompressedSize === undefined ? '-' : humanSize(l.uncompressedSize), l.imports ? String(l.imports.length) : '-', ...(d.source ? [how] : []), l.mediaType]);
  }
  ctx.say(table(rows));
  for (const l of d.layers) {
    if (!l.imports?.length) continue;
    ctx.say(`\nlayer ${l.index + 1} imports:`);
    ctx.say(table(l.imports.map((i) => [i.path + (i.kind === 'dir' ? '/' : ''), 'from', i.block, humanSize(i.size)])));
  }
}

export interface StoreImage {
  name: string;
  digest: string;
  blockForm: boolean;
  blocks: number;
  size: number;
}

export async function imagesCommand(): Promise<StoreImage[]> {
  const store = Store.open();
  const out: StoreImage[] = [];
  for (const { name, digest } of await store.images()) {
    const d = await describeImage(await store.openImage(name), { imports: false });
    out.push({ name, digest, blockForm: d.blockForm, blocks: d.blocks.count, size: d.storedSize });
  }
  return out;
}

export function printImages(list: StoreImage[], ctx: CliContext): void {
  const rows = [['IMAGE', 'DIGEST', 'FORM', 'BLOCKS', 'SIZE']];
  for (const i of list) rows.push([i.name, shortDigest(i.digest), i.blockForm ? 'block' : 'standard', String(i.blocks), humanSize(i.size)]);
  ctx.say(table(rows));
}
