import { materialize, type MaterializeResult } from '../blocks/materialize.js';
import { materializeIndex, type IndexResult } from '../blocks/materialize-index.js';
import { originalImage } from '../fidelity/original.js';
import type { Compression } from '../oci/media-types.js';
import { oneImage, openSibling, platformEntries } from '../oci/platforms.js';
import { parsePlatform } from '../oci/resolve.js';
import { refuseUnoriginal } from '../oci/standard-image.js';
import { openImage, parseRef, transportOf, type ImageRef } from '../oci/transport.js';
import { carryToOutput, pendingReferrers, REFERRER_OUTPUTS, referrersLeft, type MaterializedReferrers } from '../referrers/carry.js';
import { standsFor } from '../oci/referrer-entries.js';
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

/**
 * The fallback compression and whether the source's blobs are wanted: `original` is the default
 * of every output that stores blobs but the store (which keeps what is cheapest to splice).
 */
function compressionFor(target: ImageRef, flags: { compress?: string; requireOriginal?: boolean }): { compression?: Compression; original?: 'prefer' | 'require' } {
  const archive = Boolean(transportOf(target).writeStandard);
  if (flags.requireOriginal) {
    if (flags.compress !== undefined && flags.compress !== 'original') throw new BlockportError('EUSAGE', `--require-original and --compress ${flags.compress} contradict each other`);
    if (archive) throw new BlockportError('EUSAGE', 'a docker-archive holds uncompressed layers and a manifest.json of its own: --require-original needs oci:, oci-archive: or docker://');
    return { original: 'require' };
  }
  if (flags.compress === 'original' || (flags.compress === undefined && target.transport !== 'store' && !archive)) return { original: 'prefer' };
  return { compression: parseCompression(flags.compress, 'none') };
}

export async function materializeCommand(
  src: string,
  dst: string,
  flags: { compress?: string; verify?: boolean; force?: boolean; requireOriginal?: boolean; platform?: string[]; referrers?: boolean },
  ctx: CliContext,
): Promise<MaterializeResult & { source: string; destination: string; platforms?: IndexResult['platforms']; referrers?: MaterializedReferrers }> {
  const target = parseRef(dst);
  const how = compressionFor(target, flags);
  const platforms = flags.platform?.map(parsePlatform);
  await checkOutputFile(target, flags.force);
  const from = parseRef(src);
  // an index is opened at any platform: the output takes them all, or oneImage picks
  const reader = await openImage(from, src, { platform: platforms?.[0] ?? 'any' });
  const bar = ctx.progress('materialize');
  const total = layerBytes(reader.manifest);
  const onProgress = (p: { layer: number; layers: number; bytes: number }) => bar.update(p.bytes, Math.max(total, p.bytes), `layer ${p.layer + 1}/${p.layers}`);
  try {
    // a docker-archive names the image as the output says, else as the source does
    const name = transportOf(target).nameOf?.(target) ?? transportOf(from).nameOf?.(from);
    const opts = { ...how, repoTags: name ? [name] : [], onProgress, verify: flags.verify };
    // an output that stores blobs takes every platform of an index; a docker-archive one image
    const all = !transportOf(target).writeStandard && platformEntries(reader, platforms).length > 1;
    const images = all ? await Promise.all(platformEntries(reader, platforms).map((e) => openSibling(reader, e))) : [await oneImage(reader, platforms)];
    // refused before the destination is even created
    if (how.original === 'require') for (const img of images) refuseUnoriginal({ ref: img.ref, original: await originalImage(img) });
    // signatures and SBOMs go where the output keeps them (checked first), else are counted as left
    const keeps = REFERRER_OUTPUTS.includes(target.transport);
    const subjects = [...new Set([reader, ...images].flatMap((img) => standsFor(img)))];
    const pending = flags.referrers !== false && keeps ? await pendingReferrers(reader, subjects) : undefined;
    const result: MaterializeResult & { platforms?: IndexResult['platforms'] } = all ? await materializeIndex(reader, target, dst, { ...opts, platforms }) : await materialize(images[0], target, opts);
    // what the output now has byte for byte: the top it wrote and, for an index, each platform's manifest
    const written = [...(result.manifest ? [result.manifest.digest] : []), ...(result.platforms ?? []).map((p) => p.manifest.digest)];
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
  for (const l of r.layers) rows.push([String(l.index + 1), shortDigest(l.diffId), humanSize(l.size), `${l.spliced ? 'spliced from blocks' : 'copied'}${l.hashed ? '' : ' (not hashed: verified before)'}${l.original && l.spliced ? ', original blob' : ''}`]);
  ctx.say(table(rows));
  ctx.say(`\n${r.source} -> ${r.destination}`);
  // say only what was checked: a layer copied unhashed may have rotted since it was verified
  const hashed = r.layers.filter((l) => l.hashed).length;
  const checked = hashed === r.layers.length ? 'every layer matches its diff_id' : `${hashed} of ${r.layers.length} layers hashed and match their diff_ids; the others were verified before and copied unhashed (--verify hashes them, fsck checks the store)`;
  ctx.say(`config ${r.configDigest} (image ID unchanged); ${checked}`);
  const top = r.platforms ? 'index' : 'manifest';
  if (r.original?.manifest && (!r.platforms || r.original.index)) ctx.say(`${top} ${r.manifest!.digest}: the source's own, byte for byte${r.original.index && !r.platforms ? ' (and its index)' : ''}`);
  else if (r.original) ctx.say(`${top} ${r.manifest?.digest}: a new one, not the source's (signatures over the source's digest do not apply to it)`);
  for (const l of r.layers) if (l.fallback) ctx.say(`layer ${l.index + 1}: not the source's blob: ${l.fallback}`);
  for (const p of r.platforms ?? []) ctx.say(`${p.platform}: manifest ${p.manifest.digest}${p.original ? " (the source's own)" : ''}`);
  const refs = r.referrers;
  if (refs?.written) ctx.say(`referrers: ${refs.written.referrers} signature(s), SBOM(s) or attestation(s) written beside it`);
  if (refs?.left.referrers) {
    const why = r.manifest ? `the manifest written is ${r.manifest.digest}` : 'a docker-archive keeps no manifest digest';
    ctx.say(`referrers: ${refs.left.referrers} left behind: they sign ${refs.left.subjects.join(', ')}, and ${REFERRER_OUTPUTS.includes(parseRef(r.destination).transport) ? why : `${parseRef(r.destination).transport}: outputs keep no signatures (write to oci: or docker:// to keep them)`}`);
  }
}
