// docs/benchmarks.md: the results of one run as Markdown tables, with the commands behind them.
import { formatReceiver } from './measure-receiver.js';
import { FULL_GZIP, FULL_ZSTD, PATCH_FROM } from './measure-bytes.js';
import type { BlockportRun } from './measure-blockport.js';
import { human, STRATEGIES } from './measure-chart.js';
import type { ToolRun } from './measure-compare.js';
import type { ProfileSummary } from './measure-profile.js';
import { faster, formatTargets, type Results, type UpgradeBytes } from './measure-targets.js';

function table(head: string[], rows: string[][], right = head.map((_, i) => i > 0)): string[] {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (right[i] ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ];
}

const rssMB = (kib: number) => ((kib * 1024) / 1e6).toFixed(0);
const secs = (s: number) => s.toFixed(2);

function bytesSection(ups: UpgradeBytes[]): string[] {
  const rows = STRATEGIES.map((s) => [s.label, ...ups.map((u) => {
    const v = s.bytes(u);
    return v === null ? 'n/a' : human(v);
  })]);
  const x = (a: number, b: number | null) => (b === null ? 'n/a' : `${(a / b).toFixed(a / b >= 10 ? 0 : 2)}x`);
  const ratios = [
    ['layer-level delta / bundle', ...ups.map((u) => x(u.layerLevel.bytes, u.bundle))],
    ['per-file dedup / bundle', ...ups.map((u) => x(u.perFile.bytes, u.bundle))],
    ['bundle / lower bound', ...ups.map((u) => x(u.bundle, u.patchFrom.bytes))],
    ['bundle --delta / lower bound', ...ups.map((u) => (u.bundleDelta === null ? 'n/a' : x(u.bundleDelta, u.patchFrom.bytes)))],
    ['layer-level delta / bundle --delta', ...ups.map((u) => x(u.layerLevel.bytes, u.bundleDelta))],
  ];
  const detail = [
    ['layers fetched by docker pull', ...ups.map((u) => `${u.layerLevel.layers} of ${u.layerLevel.of}`)],
    ['new files (distinct contents)', ...ups.map((u) => String(u.perFile.files))],
    ['new files, uncompressed', ...ups.map((u) => human(u.perFile.rawBytes))],
  ];
  const head = ['strategy', ...ups.map((u) => u.name)];
  return [
    '## Bytes a receiver gets, per upgrade', '',
    'MB = 10^6 bytes; exact byte counts are in `benchmarks.json`.', '',
    ...table(head, rows), '',
    '![bytes per strategy and upgrade](bytes.svg)', '',
    '### Ratios', '',
    ...table(['ratio', ...ups.map((u) => u.name)], ratios), '',
    '### Details', '',
    ...table(['', ...ups.map((u) => u.name)], detail), '',
    '### How each number is made', '',
    `- **full image**: the target's docker-archive (as \`skopeo copy oci:... docker-archive:...\` writes it; \`docker save\` writes the same layers) through \`${FULL_GZIP.join(' ')}\` and \`${FULL_ZSTD.join(' ')}\`.`,
    '- **layer-level delta** (what `docker pull` fetches): the sum of the compressed (gzip, as umoci stored them) sizes of the target\'s layers whose diff_id the old image lacks, from the OCI layout\'s descriptors.',
    '- **per-file dedup** (what zstd:chunked-style pulls reach): the target\'s image is flattened (layers applied in order, whiteouts honoured); every regular, non-empty file whose sha256 is not the content of a file of the flattened old image is compressed on its own with `zstd -3` (distinct contents counted once; the table of contents such a pull also fetches is not counted).',
    '- **blockport bundle**: `blockport blockify docker-archive:TAG.tar NAME:TAG --preset java` (node: `--preset node`) of both images into one vendor store, then `blockport bundle --to NAME:NEW --since NAME:OLD -o F`: the size of F. **--delta**: the same with `--delta`.',
    `- **lower bound**: \`${PATCH_FROM.join(' ')}\` where OLD and NEW are the two docker-archives themselves (not their layers concatenated): what a general-purpose binary delta of the whole image achieves. It is a reference rather than a strict bound: deltas made block by block, each against the matching old block, can go below it.`,
    '',
  ];
}

function timingRow(step: string, r: BlockportRun | ToolRun, note: string): string[] {
  const runs = r.runs.length > 1 ? ` (best of ${r.runs.length}: ${r.runs.map(secs).join(', ')})` : '';
  return [step, `\`${r.command}\``, secs(r.seconds) + runs, rssMB(r.peakRssKiB), note];
}

function timingSection(r: Results): string[] {
  const t = r.timings;
  const mbps = (s: number) => `${(t.layerBytes / 1e6 / s).toFixed(0)} MB/s of layer data`;
  const rows = [
    timingRow('blockify', t.blockify, mbps(t.blockify.seconds)),
    ...t.blockifyVariants.map((v) => timingRow(v.step, v, mbps(v.seconds))),
    timingRow(`bundle: ${t.bundle.subject}`, t.bundle, ''),
    ...(t.bundleDelta ? [timingRow(`bundle --delta: ${t.bundleDelta.subject}`, t.bundleDelta, '')] : []),
    timingRow(`apply: ${t.apply.subject}`, t.apply, ''),
    timingRow('materialize to docker-archive', t.materialize, `${human(t.archiveBytes)} written, fsynced`),
    timingRow('skopeo copy oci: -> docker-archive:', t.skopeo, ''),
    timingRow('GNU tar: extract, tar -c, gzip -6', t.gnuTar, 'the users\' workaround'),
    timingRow('cp of the materialized archive', t.cp, 'left in the page cache'),
    timingRow('cp + sync', t.cpSync, 'on the disk, like materialize'),
  ];
  const am = t.apply.seconds + t.materialize.seconds;
  const m = t.materialize.seconds;
  return [
    `## Time and peak RSS: ${t.tag} (${human(t.layerBytes)} of uncompressed layers)`, '',
    'Every command ran after its inputs were read once (page cache warm); the timed blockify (each run into an empty store), bundle, materialize and cp best of 3, each run of blockify, materialize and cp + sync after `sync`; materialize and cp + sync took turns (materialize, cp + sync, materialize...) so both met the disk at the same speed. Peak RSS is GNU time\'s `%M`:',
    'the largest single process of the command, child processes included (MB = 10^6 bytes): `bundle --delta` and `apply` of a delta bundle run `zstd --patch-from`',
    'or `xdelta3`, whose memory counts there, as does the node process (each measured on its own, not summed). Bundle and apply are of the upgrade named on their row',
    '(the customer store holds the old image); the other rows work on the image named in the heading.', '',
    ...table(['step', 'command', 'seconds', 'peak RSS MB', ''], rows, [false, false, true, true, false]), '',
    `- materialize is **${faster(t.skopeo.seconds, m)} than skopeo copy** and ${faster(t.gnuTar.seconds, m)} than GNU tar re-tarring; it takes ${(m / t.cpSync.seconds).toFixed(1)}x the time of cp + sync of its output (${(m / t.cp.seconds).toFixed(1)}x plain cp).`,
    ...(t.apply.subject.endsWith(t.tag.replace('-', ' ')) ? [`- apply + materialize (${secs(am)} s) is ${faster(t.skopeo.seconds, am)} than skopeo copy and ${faster(t.gnuTar.seconds, am)} than GNU tar re-tarring.`] : []),
    `- blockify reads ${(t.layerBytes / 1e6 / t.blockify.seconds).toFixed(0)} MB/s of uncompressed layer data from a docker-archive, with its default options.`,
    '',
    ...profileSection(r),
  ];
}

function profileSection(r: Results): string[] {
  const p = r.timings.profiles;
  type Row = ProfileSummary['top'][number];
  const rows = (l: Row[]) => [
    ...l.map((f) => [`\`${f.fn}\``, String(f.ms), `${(100 * f.share).toFixed(0)}%`]),
    ['everything else', '', `${(100 * (1 - l.reduce((n, f) => n + f.share, 0))).toFixed(0)}%`],
  ];
  const both = (what: string, s: ProfileSummary) => [
    `**${what}** (${secs(s.seconds)} s, ${s.sampledMs} ms sampled)`, '',
    ...table(['per file', 'ms', 'share'], rows(s.modules)), '',
    ...table(['per function', 'ms', 'share'], rows(s.top)), '',
  ];
  return [
    '### Where the time goes', '',
    '`node --cpu-prof` of the same blockify and materialize: main-thread self time, per script file and per function.',
    '`hash` is sha256 (`Hash.update`); `header.js`, `reader.js` and `bytes.js` read tar headers. zlib and file system calls',
    'run in libuv\'s thread pool: the main thread shows that wait as `(idle)`.', '',
    ...both('blockify', p.blockify),
    ...both('materialize', p.materialize),
  ];
}

function runsSection(r: Results): string[] {
  const rows = r.runs.map((x) => [x.step, x.subject, secs(x.seconds), rssMB(x.peakRssKiB)]);
  return ['## Every blockport command of the run', '', ...table(['command', 'on', 'seconds', 'peak RSS MB'], rows, [false, false, true, true]), ''];
}

/** Seconds the full-image and --patch-from compressions took when they were measured. */
function compressSeconds(r: Results): number {
  return r.upgrades.reduce((n, u) => n + u.fullGzip.seconds + u.fullZstd.seconds + u.patchFrom.seconds, 0);
}

function header(r: Results): string[] {
  const mins = (r.seconds / 60).toFixed(1);
  return [
    '# Benchmarks', '',
    `Generated by \`npm run bench\` (\`bench/run.ts\`) on ${r.date.slice(0, 10)}, in ${mins} minutes; rerun it rather than editing this file.`,
    'The images are the scenarios of `bench/README.md` (built by `bench/scenarios.ts` from Debian and npm packages).', '',
    '## How to rerun', '',
    '```sh',
    'npm run build && node dist/bench/scenarios.js --out bench/work   # once: the scenario images (about 7 minutes)',
    'npm run bench                                                    # = npm run build && node dist/bench/run.js',
    'node dist/bench/run.js --reuse --keep   # reuse bench/work/scenarios.json as is; keep the stores in bench/work/run',
    '```', '',
    `Compressing the full images (gzip, \`zstd -19\`) and computing the \`--patch-from\` lower bounds took ${(compressSeconds(r) / 60).toFixed(0)} minutes added up`,
    `(two ran at once: about ${(compressSeconds(r) / 120).toFixed(0)} minutes of wall time). Their sizes depend only on the input bytes and the tool version, so they are`,
    'cached in `bench/work/cache/bench-sizes.json` under the sha256 of the inputs and the command; `--fresh` ignores the cache.',
    `Everything else is measured afresh on every run. In this run ${r.cachedSizes} of ${r.upgrades.length * 3} such sizes came from the cache.`, '',
    '## Machine', '',
    ...table(['', ''], Object.entries(r.machine).map(([k, v]) => [k, v]), [false, false]), '',
  ];
}

/** The whole Markdown report. */
export function formatReport(r: Results): string {
  return [
    ...header(r),
    ...bytesSection(r.upgrades),
    ...timingSection(r),
    ...(r.receiver ? formatReceiver(r.receiver) : []),
    '## Targets', '',
    '```', ...formatTargets(r.targets), '```', '',
    ...runsSection(r),
  ].join('\n');
}
