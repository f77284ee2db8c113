import { materialize, type MaterializeResult } from '../blocks/materialize.js';
import { openImage, parseRef, transportOf, type ImageRef } from '../oci/transport.js';
import { carryToOutput, pendingReferrers, REFERRER_OUTPUTS, referrersLeft, type MaterializedReferrers } from '../referrers/carry.js';
import { promises as fsp } from 'node:fs';
import { basename, dirname } from 'node:path';
import { removeDeadTemps } from '../cas/atomic.js';
import { BlockportError } from '../errors.js';
import type { CliContext } from './context.js';
import { humanSize, layerBytes, parseCompression, shortDigest, table } from './format.js';

/**
 * An archive output replaces a file: refused when one is there, unless --force (as skopeo does).
 * Temp files a killed materialize left beside it go first.
 */
async function checkOutputFile(ref: ImageRef, force: boolean | undefined): Promise<void> {
  if (ref.transport !== 'docker-archive' && ref.transport !== 'oci-archive') return;
  const target = ref as ImageRef & { file: string };
  await removeDeadTemps(dirname(target.file), basename(target.file));
  const st = await fsp.lstat(target.file).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) throw new BlockportError('EUSAGE', `${target.file}: is a directory (a ${target.transport}: output is a file)`, { subject: target.file });
  if (!force) throw new BlockportError('EUSAGE', `${target.file} already exists; refusing to replace it (--force replaces it)`, { subject: target.file });
}

export async function materializeCommand(src: string, dst: string, flags: { compress?: string; verify?: boolean; force?: boolean; referrers?: boolean }, ctx: CliContext): Promise<MaterializeResult & { source: string; destination: string; referrers?: MaterializedReferrers }> {
  const target = parseRef(dst);
  await checkOutputFile(target, flags.force);
  const from = parseRef(src);
  const reader = await openImage(from, src);
  const bar = ctx.progress('materialize');
  const total = layerBytes(reader.manifest);
  const onProgress = (p: { layer: number; layers: number; bytes: number }) => bar.update(p.bytes, Math.max(total, p.bytes), `layer ${p.layer + 1}/${p.layers}`);
  try {
    // a docker-archive names the image as the output says, else as the source does
    const name = transportOf(target).nameOf?.(target) ?? transportOf(from).nameOf?.(from);
    const compression = parseCompression(flags.compress, 'none');
    // signatures and SBOMs go where the output keeps them (checked first), else are counted as left
    const keeps = REFERRER_OUTPUTS.includes(target.transport);
    const pending = flags.referrers !== false && keeps ? await pendingReferrers(reader) : undefined;
    const result = await materialize(reader, target, { compression, repoTags: name ? [name] : [], onProgress, verify: flags.verify });
    const written = result.manifest ? [result.manifest.digest] : [];
    const referrers = flags.referrers === false ? undefined : keeps ? await carryToOutput(pending, written, target, dst) : await referrersLeft(reader);
    return { source: src, destination: dst, ...result, ...(referrers ? { referrers } : {}) };
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
  const refs = r.referrers;
  if (refs?.written) ctx.say(`referrers: ${refs.written.referrers} signature(s), SBOM(s) or attestation(s) written beside it`);
  if (refs?.left.referrers) {
    const why = r.manifest ? `the manifest written is ${r.manifest.digest}` : 'a docker-archive keeps no manifest digest';
    ctx.say(`referrers: ${refs.left.referrers} left behind: they sign ${refs.left.subjects.join(', ')}, and ${REFERRER_OUTPUTS.includes(parseRef(r.destination).transport) ? why : `${parseRef(r.destination).transport}: outputs keep no signatures (write to oci: or docker:// to keep them)`}`);
  }
}
