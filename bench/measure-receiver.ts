// The receiver's side per scenario image: blockify (vendor), apply of a full bundle and materialize
// to a docker-archive (customer), each against cp + sync of the same archive, skopeo copy and a GNU
// tar repack of the image, with every command's peak RSS. materialize runs after a first
// materialize, so the store's verified-layer records and copy plans apply, as on a customer's
// machine the second time it loads an image (apply makes them: the first time is the same).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { apply, blockify, materialize, materializeArgs, storeName, type Blockport } from './measure-blockport.js';
import { cpSyncCommand, gnuTarRepack, skopeoCopy } from './measure-compare.js';
import { bestInTurns, type Timing } from './measure-exec.js';
import type { ScenarioImage } from './scenarios.js';

/** One scenario image as a receiver gets it. */
export interface ReceiverRow {
  tag: string;
  /** Uncompressed layer bytes and files of the image. */
  layerBytes: number;
  files: number;
  archiveBytes: number;
  blockify: Timing;
  apply: Timing;
  /** Best of 3 in turns with cpSync. */
  materialize: Timing & { runs: number[] };
  cpSync: Timing & { runs: number[] };
  skopeo: Timing;
  gnuTar: Timing;
}

/**
 * Measures `img` from nothing in stores of its own (removed after): blockify with `preset`, a full
 * bundle, apply, a first materialize, then materialize and cp + sync in turns, then skopeo copy
 * and the tar repack from the scenario layout.
 */
export async function receiverRow(bp: Blockport, layout: string, img: ScenarioImage, preset: string): Promise<ReceiverRow> {
  const [vendorHome, customerHome] = [`recv-vendor-${img.tag}`, `recv-customer-${img.tag}`];
  const file = join(bp.work, `recv-${img.tag}.bpk`);
  const archive = join(bp.work, `recv-${img.tag}.tar`);
  const copy = join(bp.work, `recv-${img.tag}-copy.tar`);
  try {
    const b = await blockify(bp, img.archive, img.tag, preset, vendorHome);
    await bp.run(vendorHome, 'bundle', `${img.tag} (full)`, ['bundle', '--to', storeName(img.tag), '-o', file]);
    const a = await apply(bp, customerHome, file, `${img.tag} (full)`);
    await fsp.rm(join(bp.work, vendorHome), { recursive: true, force: true });
    await fsp.rm(file, { force: true });
    await materialize(bp, customerHome, img.tag, archive, `${img.tag} (first)`);
    const mat = bp.command(customerHome, materializeArgs(img.tag, archive));
    const [m, s] = await bestInTurns(3, [
      { c: mat, reset: () => fsp.rm(archive, { force: true }) },
      { c: cpSyncCommand(archive, copy), reset: () => fsp.rm(copy, { force: true }) },
    ]);
    bp.record('materialize', `${img.tag} (again)`, mat, m);
    const archiveBytes = (await fsp.stat(archive)).size;
    await fsp.rm(copy, { force: true });
    await fsp.rm(archive, { force: true });
    const skopeo = await skopeoCopy(layout, img.tag, join(bp.work, 'recv-skopeo.tar'), img.archiveName);
    await fsp.rm(join(bp.work, 'recv-skopeo.tar'), { force: true });
    const gnuTar = await gnuTarRepack(layout, img.tag, bp.work);
    const files = img.layers.reduce((n, l) => n + l.files, 0);
    const layerBytes = img.layers.reduce((n, l) => n + l.tarBytes, 0);
    return { tag: img.tag, layerBytes, files, archiveBytes, blockify: b, apply: a, materialize: m, cpSync: s, skopeo, gnuTar };
  } finally {
    for (const p of [vendorHome, customerHome]) await fsp.rm(join(bp.work, p), { recursive: true, force: true });
    for (const p of [file, archive, copy]) await fsp.rm(p, { force: true });
  }
}

/** A wall-time ratio with two decimals: the receiver's ratios sit around 1. */
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;
const sec = (t: Timing) => `${t.seconds.toFixed(2)} s`;
const rss = (t: Timing) => `${(t.peakRssKiB * 1024 / 1e6).toFixed(0)} MB`;

/** The Markdown tables of the rows: times and ratios, then peak RSS. */
export function formatReceiver(rows: ReceiverRow[]): string[] {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const rule = (n: number) => `|${'---|'.repeat(n)}`;
  return [
    '## Receiver speed per scenario', '',
    'materialize to a docker-archive from a store that applied a full bundle, after one first materialize (best of 3 in turns with `cp` + `sync` of the',
    'same archive); apply of the full bundle and blockify once each; skopeo copy (oci: to docker-archive:) and the GNU tar repack (extract every layer,',
    '`tar -c | gzip -6`) once each, from the scenario layout. Ratios are wall time over `cp` + `sync`, skopeo copy and the tar repack.', '',
    line(['image', 'layers', 'files', 'materialize', 'cp + sync', 'vs cp', 'vs skopeo', 'vs tar repack', 'apply', 'apply vs cp', 'blockify', 'blockify vs cp', 'skopeo', 'tar repack']),
    rule(14),
    ...rows.map((r) => line([
      r.tag, mb(r.layerBytes), r.files.toLocaleString('en-US'), sec(r.materialize), sec(r.cpSync), ratio(r.materialize.seconds, r.cpSync.seconds),
      ratio(r.materialize.seconds, r.skopeo.seconds), ratio(r.materialize.seconds, r.gnuTar.seconds), sec(r.apply), ratio(r.apply.seconds, r.cpSync.seconds),
      sec(r.blockify), ratio(r.blockify.seconds, r.cpSync.seconds), sec(r.skopeo), sec(r.gnuTar),
    ])), '',
    'Peak RSS (the largest process of each command):', '',
    line(['image', 'blockify', 'apply', 'materialize', 'skopeo copy', 'tar repack']), rule(6),
    ...rows.map((r) => line([r.tag, rss(r.blockify), rss(r.apply), rss(r.materialize), rss(r.skopeo), rss(r.gnuTar)])), '',
    `materialize runs, s: ${rows.map((r) => `${r.tag} ${r.materialize.runs.join('/')} (cp + sync ${r.cpSync.runs.join('/')})`).join('; ')}`, '',
  ];
}
