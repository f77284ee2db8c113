// Zip deltas against byte deltas on the java upgrades: bundle --delta with BLOCKPORT_ZIP_DELTA=0
// (each changed jar a zstd/xdelta3 patch of its bytes, as before zip deltas) and with zip deltas,
// the bundle's bytes beside the --patch-from lower bound of docs/benchmarks.json, and what each
// costs the sender (bundle) and the receiver (apply, materialize): wall and CPU seconds, peak RSS.
// Both materialized archives are compared byte for byte.
//
//   npm run build && node dist/bench/scenarios.js --out bench/work --only java
//   node dist/bench/zip-delta.js [--work bench/work] [--repeat 2]
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { spawnText } from './measure-exec.js';
import { cliNodeFlags, storeName } from './measure-blockport.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/benchmarks.json', import.meta.url));

interface Cost {
  seconds: number;
  cpu: number;
  rssMB: number;
}

/** Runs `blockport ARGS` (with the node flags of its `#!` line, as installed) on the store `home` under GNU time: wall and CPU (user + sys, children too) seconds, peak RSS. */
async function bp(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Cost> {
  const out = `${home}.time`;
  await spawnText('/usr/bin/time', ['-o', out, '-f', '%e %U %S %M', process.execPath, ...cliNodeFlags(CLI), CLI, ...args], { ...env, BLOCKPORT_HOME: home });
  const [e, u, s, m] = (await fsp.readFile(out, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
  await fsp.rm(out);
  return { seconds: e, cpu: u + s, rssMB: (m * 1024) / 1e6 };
}

/** The best (least CPU) of `n` runs, fresh state before each. */
async function best(n: number, run: () => Promise<Cost>, reset: () => Promise<unknown> = async () => {}): Promise<Cost> {
  let b: Cost | undefined;
  for (let i = 0; i < n; i++) {
    await reset();
    const c = await run();
    if (!b || c.cpu < b.cpu) b = { ...c, rssMB: Math.max(c.rssMB, b?.rssMB ?? 0) };
  }
  return b!;
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c);
  return h.digest('hex');
}

/** The --patch-from lower bound the last full bench run measured for an upgrade. */
function lowerBound(name: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(DOCS, 'utf8')).upgrades as { name: string; patchFrom?: { bytes: number } }[]).find((u) => u.name === name)?.patchFrom?.bytes;
  } catch {
    return undefined;
  }
}

const MODES = [{ mode: 'byte deltas', env: { BLOCKPORT_ZIP_DELTA: '0' } }, { mode: 'zip deltas', env: {} }];

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { work: { type: 'string', default: 'bench/work' }, repeat: { type: 'string', default: '1' } } });
  const repeat = Number(values.repeat);
  const dir = join(values.work!, 'zip-delta');
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  const vendor = join(dir, 'vendor');
  for (const tag of ['java-v1', 'java-v2', 'java-v3']) await bp(vendor, ['blockify', `docker-archive:${join(values.work!, 'archives', `${tag}.tar`)}`, storeName(tag), '--preset', 'java']);
  const customer = join(dir, 'customer-v1');
  await bp(vendor, ['bundle', '--to', 'java:v1', '-o', join(dir, 'v1.bpk')]);
  await bp(customer, ['apply', join(dir, 'v1.bpk')]);
  const rows: Record<string, unknown>[] = [];
  for (const to of ['java-v2', 'java-v3']) {
    const name = `java v1->${to.slice(-2)}`;
    const bound = lowerBound(name);
    const archives = new Set<string>();
    for (const { mode, env } of MODES) {
      const file = join(dir, `${to}.${mode.split(' ')[0]}.bpk`);
      const sender = await best(repeat, () => bp(vendor, ['bundle', '--to', storeName(to), '--since', 'java:v1', '--delta', '-o', file], env));
      const bytes = (await fsp.stat(file)).size;
      const home = join(dir, 'customer');
      const fresh = async () => {
        await fsp.rm(home, { recursive: true, force: true });
        await spawnText('cp', ['-a', customer, home]);
      };
      const apply = await best(repeat, () => bp(home, ['apply', file]), fresh);
      const out = join(dir, `${to}.tar`);
      const materialize = await bp(home, ['materialize', storeName(to), `docker-archive:${out}:${storeName(to)}`]);
      archives.add(await sha256(out));
      await fsp.rm(out);
      rows.push({ upgrade: name, mode, bytes, bound, ofBound: bound ? bytes / bound : undefined, sender, apply, materialize });
      console.error(`${name} ${mode}: ${bytes} bytes; bundle ${sender.seconds} s (${sender.cpu.toFixed(1)} s CPU); apply ${apply.seconds} s (${apply.cpu.toFixed(1)} s CPU, ${apply.rssMB.toFixed(0)} MB); materialize ${materialize.seconds} s`);
    }
    if (archives.size !== 1) throw new Error(`${name}: the two bundles materialized different archives`);
  }
  await fsp.writeFile(join(dir, 'result.json'), JSON.stringify({ load: (await fsp.readFile('/proc/loadavg', 'utf8')).trim(), rows }, null, 2));
  const mb = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);
  console.log('| upgrade | bundle --delta with | bytes | / lower bound | bundle s (CPU s) | apply s (CPU s) | apply RSS MB | materialize s (CPU s) |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  type Row = { upgrade: string; mode: string; bytes: number; ofBound?: number; sender: Cost; apply: Cost; materialize: Cost };
  for (const r of rows as Row[]) {
    console.log(`| ${r.upgrade} | ${r.mode} | ${mb(r.bytes)} | ${r.ofBound?.toFixed(2) ?? '-'}x | ${r.sender.seconds.toFixed(1)} (${r.sender.cpu.toFixed(1)}) | ${r.apply.seconds.toFixed(1)} (${r.apply.cpu.toFixed(1)}) | ${r.apply.rssMB.toFixed(0)} | ${r.materialize.seconds.toFixed(1)} (${r.materialize.cpu.toFixed(1)}) |`);
  }
  // the receiver's cost (apply + materialize) with zip deltas against that with byte deltas
  for (let i = 0; i + 1 < rows.length; i += 2) {
    const [b, z] = [rows[i] as Row, rows[i + 1] as Row];
    const sum = (r: Row, k: 'seconds' | 'cpu') => r.apply[k] + r.materialize[k];
    console.log(`${z.upgrade}: receiver (apply + materialize) with zip deltas ${(sum(z, 'seconds') / sum(b, 'seconds')).toFixed(2)}x the wall seconds, ${(sum(z, 'cpu') / sum(b, 'cpu')).toFixed(2)}x the CPU seconds of byte deltas`);
  }
}

await main();
