// The bytes chart of docs/bytes.svg, written as plain SVG text: one group of horizontal bars per
// upgrade, one bar per strategy, on a log scale (the sizes span four orders of magnitude).
import type { UpgradeBytes } from './measure-targets.js';

/** The strategies in chart order, with their colours. */
export const STRATEGIES: { label: string; short: string; color: string; bytes: (u: UpgradeBytes) => number | null }[] = [
  { label: 'full image, gzip -6', short: 'image gzip', color: '#9e9e9e', bytes: (u) => u.fullGzip.bytes },
  { label: 'full image, zstd -19', short: 'image zstd -19', color: '#757575', bytes: (u) => u.fullZstd.bytes },
  { label: 'layer-level delta (docker pull)', short: 'layer-level', color: '#e57373', bytes: (u) => u.layerLevel.bytes },
  { label: 'per-file dedup (zstd:chunked-style)', short: 'per-file dedup', color: '#ffb74d', bytes: (u) => u.perFile.bytes },
  { label: 'blockport bundle', short: 'bundle', color: '#42a5f5', bytes: (u) => u.bundle },
  { label: 'blockport bundle --delta', short: 'bundle --delta', color: '#1565c0', bytes: (u) => u.bundleDelta },
  { label: 'lower bound: zstd --patch-from', short: 'lower bound', color: '#66bb6a', bytes: (u) => u.patchFrom.bytes },
];

const BAR = 13;
const GAP = 3;
const LEFT = 150;
const PLOT = 520;
const TOP = 40;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** "12.3 MB", "250 kB". */
export function human(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)} MB`;
  return `${(n / 1e3).toFixed(0)} kB`;
}

/** An axis label for a power of ten: "100 kB", "1 MB", "1 GB". */
function decadeLabel(d: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  const u = Math.min(Math.floor(d / 3), units.length - 1);
  return `${10 ** (d - 3 * u)} ${units[u]}`;
}

/** The decades the axis spans, from below the smallest value to above the largest. */
function decades(values: number[]): [number, number] {
  const lo = Math.floor(Math.log10(Math.max(1, Math.min(...values))));
  const hi = Math.ceil(Math.log10(Math.max(...values)));
  return [lo, Math.max(hi, lo + 1)];
}

/** The whole chart as an SVG document. */
export function bytesChart(upgrades: UpgradeBytes[], title: string): string {
  const values = upgrades.flatMap((u) => STRATEGIES.map((s) => s.bytes(u))).filter((v): v is number => v !== null && v > 0);
  const [lo, hi] = decades(values);
  const x = (v: number) => LEFT + ((Math.log10(v) - lo) / (hi - lo)) * PLOT;
  const group = STRATEGIES.length * (BAR + GAP) + 22;
  const legendTop = TOP + upgrades.length * group + 16;
  const height = legendTop + Math.ceil(STRATEGIES.length / 2) * 18 + 10;
  const width = LEFT + PLOT + 90;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let d = lo; d <= hi; d++) {
    const gx = x(10 ** d).toFixed(1);
    out.push(`<line x1="${gx}" y1="${TOP - 6}" x2="${gx}" y2="${legendTop - 10}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${gx}" y="${TOP - 10}" text-anchor="middle" fill="#616161">${decadeLabel(d)}</text>`);
  }
  upgrades.forEach((u, gi) => {
    const top = TOP + gi * group;
    out.push(`<text x="8" y="${top + 12}" font-weight="bold">${esc(u.name)}</text>`);
    STRATEGIES.forEach((s, si) => {
      const y = top + 18 + si * (BAR + GAP);
      const v = s.bytes(u);
      out.push(`<text x="${LEFT - 6}" y="${y + BAR - 3}" text-anchor="end" fill="#424242">${esc(s.short)}</text>`);
      if (v === null || v <= 0) {
        out.push(`<text x="${LEFT + 4}" y="${y + BAR - 3}" fill="#9e9e9e">n/a</text>`);
        return;
      }
      const w = Math.max(1, x(v) - LEFT);
      out.push(`<rect x="${LEFT}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" fill="${s.color}"><title>${esc(`${s.label}: ${v} bytes`)}</title></rect>`);
      out.push(`<text x="${(LEFT + w + 4).toFixed(1)}" y="${y + BAR - 3}">${human(v)}</text>`);
    });
  });
  STRATEGIES.forEach((s, i) => {
    const lx = 8 + (i % 2) * 330;
    const ly = legendTop + Math.floor(i / 2) * 18;
    out.push(`<rect x="${lx}" y="${ly}" width="12" height="12" fill="${s.color}"/><text x="${lx + 17}" y="${ly + 10}">${esc(s.label)}</text>`);
  });
  out.push(`<text x="${width - 8}" y="${height - 6}" text-anchor="end" fill="#9e9e9e">log scale</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
