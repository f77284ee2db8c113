import { BlockportError } from '../errors.js';
import { annotatedSize, type Compression } from '../oci/media-types.js';
import type { ImageManifest } from '../oci/types.js';
/** Human sizes: 1.5 MB style, powers of 1000 like docker prints them. */
export function humanSize(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

export function shortDigest(d: string): string {
  return d.startsWith('sha256:') ? d.slice(7, 19) : d;
}

/** A plain left-aligned table (right-aligned where the cell is a number or size). */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const numeric = (s: string) => /^[\d.,]+( [kMGT]?B|%|x)?$/.test(s);
  return rows
    .map((r) => r.map((cell, c) => (numeric(cell) && rows.indexOf(r) > 0 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd())
    .join('\n');
}

/** Bytes of standard layers an image holds, for a progress bar's total (blob sizes where unknown). */
export function layerBytes(m: ImageManifest): number {
  return m.layers.reduce((n, l) => n + (annotatedSize(l) ?? l.size), 0);
}

/** A --compress value: none, gzip or zstd; `fallback` when the flag is absent. */
export function parseCompression(v: string | undefined, fallback: Compression): Compression {
  if (v === undefined) return fallback;
  if (v === 'none' || v === 'gzip' || v === 'zstd') return v;
  throw new BlockportError('EUSAGE', `unknown compression ${JSON.stringify(v)} (none, gzip or zstd)`);
}
