import { materialize, type MaterializeResult } from '../blocks/materialize.js';
import { openImage, parseRef, transportOf } from '../oci/transport.js';
import type { CliContext } from './context.js';
import { humanSize, layerBytes, parseCompression, shortDigest, table } from './format.js';

export async function materializeCommand(src: string, dst: string, flags: { compress?: string; verify?: boolean }, ctx: CliContext): Promise<MaterializeResult & { source: string; destination: string }> {
  const target = parseRef(dst);
  const from = parseRef(src);
  const reader = await openImage(from, src);
  const bar = ctx.progress('materialize');
  const total = layerBytes(reader.manifest);
  const onProgress = (p: { layer: number; layers: number; bytes: number }) => bar.update(p.bytes, Math.max(total, p.bytes), `layer ${p.layer + 1}/${p.layers}`);
  try {
    // a docker-archive names the image as the output says, else as the source does
    const name = transportOf(target).nameOf?.(target) ?? transportOf(from).nameOf?.(from);
    const compression = parseCompression(flags.compress, 'none');
    const result = await materialize(reader, target, { compression, repoTags: name ? [name] : [], onProgress, verify: flags.verify });
    return { source: src, destination: dst, ...result };
  } finally {
    bar.stop();
    await reader.close();
  }
}

export function printMaterialize(r: Awaited<ReturnType<typeof materializeCommand>>, ctx: CliContext): void {
  const rows = [['LAYER', 'DIFF_ID', 'SIZE', 'HOW']];
  for (const l of r.layers) rows.push([String(l.index), shortDigest(l.diffId), humanSize(l.size), `${l.spliced ? 'spliced from blocks' : 'copied'}${l.hashed ? '' : ' (verified before)'}`]);
  ctx.say(table(rows));
  ctx.say(`\n${r.source} -> ${r.destination}`);
  ctx.say(`config ${r.configDigest} (image ID unchanged); every layer matches its diff_id`);
}
