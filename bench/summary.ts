// The printed summary of a scenario build: per image, its layers' sizes and file counts.
import { readJarList } from './jars.js';
import type { ScenarioSet } from './scenarios.js';

/** Byte-identical jars (by sha256) of the deps layer `b` also found in the deps layer `a`. */
export async function jarShare(a: string, b: string): Promise<{ jars: number; sharedJars: number; bytes: number; sharedBytes: number }> {
  const have = new Set((await readJarList(a)).map((j) => j.sha256));
  const list = await readJarList(b);
  const shared = list.filter((j) => have.has(j.sha256));
  const sum = (l: { bytes: number }[]) => l.reduce((n, j) => n + j.bytes, 0);
  return { jars: list.length, sharedJars: shared.length, bytes: sum(list), sharedBytes: sum(shared) };
}

/** A plain-text table of the set: one block per image, one row per layer. */
export function formatSummary(set: ScenarioSet): string {
  const lines: string[] = [];
  const row = (c: string[]) => lines.push(c.map((s, i) => (i < 2 ? s.padEnd(WIDTH[i]) : s.padStart(WIDTH[i]))).join(' ').trimEnd());
  row(['image', 'layer', 'tar MB', 'gzip MB', 'files', 'jars']);
  for (const img of set.images) {
    for (const l of img.layers) row([img.tag, l.name, mb(l.tarBytes), mb(l.compressedBytes), String(l.files), l.jars ? String(l.jars) : '']);
    const sum = (f: (l: (typeof img.layers)[number]) => number) => img.layers.reduce((n, l) => n + f(l), 0);
    row([img.tag, '= total', mb(sum((l) => l.tarBytes)), mb(sum((l) => l.compressedBytes)), String(sum((l) => l.files)), String(sum((l) => l.jars) || '')]);
    for (const c of img.changes) lines.push(`    ${c}`);
  }
  if (set.teamsShare) {
    const s = set.teamsShare;
    lines.push(`teams-v1 jars also in java-v1: ${s.sharedJars} of ${s.jars} (${pct(s.sharedJars, s.jars)}), ${mb(s.sharedBytes)} of ${mb(s.bytes)} MB (${pct(s.sharedBytes, s.bytes)})`);
  }
  lines.push(`layout ${set.layout}; archives ${set.archivesDir}`);
  lines.push(`upgrades: ${set.upgrades.map((u) => u.name).join('; ')}`);
  lines.push(`built in ${set.seconds} s`);
  return lines.join('\n') + '\n';
}

const WIDTH = [9, 10, 8, 8, 7, 5];

function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}

function pct(a: number, b: number): string {
  return b === 0 ? '-' : `${Math.round((100 * a) / b)}%`;
}
