import { materializeToDockerArchive, materializeToWriter, type MaterializeResult } from '../blocks/materialize.js';
import { openImage, openWriter } from '../oci/open.js';
import { promises as fsp } from 'node:fs';
import { basename, dirname } from 'node:path';
import { removeDeadTemps } from '../cas/atomic.js';
import { BlockportError } from '../errors.js';
import { parseRef, storeHome, type ImageRef } from '../oci/reference.js';
import { VerifiedLayers } from '../store/verified.js';
import type { CliContext } from './context.js';
import { humanSize, parseCompression, shortDigest, table } from './format.js';

/**
 * An archive output replaces a file: refused when one is there, unless --force (as skopeo does).
 * Temp files a killed materialize left beside it go first.
 */
async function checkOutputFile(target: ImageRef, force: boolean | undefined): Promise<void> {
  if (target.transport !== 'docker-archive' && target.transport !== 'oci-archive') return;
  await removeDeadTemps(dirname(target.file), basename(target.file));
  const st = await fsp.lstat(target.file).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) throw new BlockportError('EUSAGE', `${target.file}: is a directory (a ${target.transport}: output is a file)`, { subject: target.file });
  if (!force) throw new BlockportError('EUSAGE', `${target.file} already exists; refusing to replace it (--force replaces it)`, { subject: target.file });
}

export async function materializeCommand(src: string, dst: string, flags: { compress?: string; verify?: boolean; force?: boolean }, ctx: CliContext): Promise<MaterializeResult & { source: string; destination: string }> {
  const target = parseRef(dst);
  await checkOutputFile(target, flags.force);
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
  // layers are numbered from 1 in every table and message
  for (const l of r.layers) rows.push([String(l.index + 1), shortDigest(l.diffId), humanSize(l.size), `${l.spliced ? 'spliced from blocks' : 'copied'}${l.hashed ? '' : ' (not hashed: verified before)'}`]);
  ctx.say(table(rows));
  ctx.say(`\n${r.source} -> ${r.destination}`);
  // say only what was checked: a layer copied unhashed may have rotted since it was verified
  const hashed = r.layers.filter((l) => l.hashed).length;
  const checked = hashed === r.layers.length ? 'every layer matches its diff_id' : `${hashed} of ${r.layers.length} layers hashed and match their diff_ids; the others were verified before and copied unhashed (--verify hashes them, fsck checks the store)`;
  ctx.say(`config ${r.configDigest} (image ID unchanged); ${checked}`);
}
