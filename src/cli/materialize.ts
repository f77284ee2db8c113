import { materializeToDockerArchive, materializeToWriter, type MaterializeResult } from '../blocks/materialize.js';
import { openImage, openWriter } from '../oci/open.js';
import { parseRef, storeHome } from '../oci/reference.js';
import { VerifiedLayers } from '../store/verified.js';
import type { CliContext } from './context.js';
import { humanSize, parseCompression, shortDigest, table } from './format.js';

export async function materializeCommand(src: string, dst: string, flags: { compress?: string; verify?: boolean }, ctx: CliContext): Promise<MaterializeResult & { source: string; destination: string }> {
  const target = parseRef(dst);
  const reader = await openImage(src);
  // only the store keeps a record of verified layers; other sources are hashed every time
  const verified = parseRef(src).transport === 'store' ? new VerifiedLayers(storeHome()) : undefined;
  const bar = ctx.progress('materialize');
  const total = reader.manifest.layers.reduce((n, l) => n + Number(l.annotations?.['io.blockport.layer.size'] ?? l.size), 0);
  const onProgress = (p: { layer: number; layers: number; bytes: number }) => bar.update(p.bytes, Math.max(total, p.bytes), `layer ${p.layer + 1}/${p.layers}`);
  try {
    let result: MaterializeResult;
    if (target.transport === 'docker-archive') {
      const tags = target.name ? [target.name] : parseRef(src).transport === 'store' ? [src] : [];
      result = await materializeToDockerArchive(reader, { file: target.file }, tags, { onProgress, verified, verify: flags.verify });
    } else {
      result = await materializeToWriter(reader, await openWriter(target), { compression: parseCompression(flags.compress, 'none'), onProgress, verified, verify: flags.verify });
    }
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
