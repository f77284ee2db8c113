// `npm run bench:build`: how long `blockport build` takes on a service's build output (jars and a
// node_modules tree), against what `docker build` does with it (GNU tar of the tree + gzip -6,
// the layer it pushes) and against blockifying the same image made the standard way. Best of N
// runs, taken in turns so the commands compared meet the same disk.
//
//   node dist/bench/build.js [--out bench/work/build] [--runs 3] [--jars 120] [--packages 400]
import { createCipheriv, createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { tmpdir } from 'node:os';
import { settle, spawnText, warm, type Command } from './measure-exec.js';

/** One run under GNU time: wall seconds, CPU seconds (user + sys, every process of the command) and peak RSS. */
async function timedCpu(c: Command): Promise<{ wall: number; cpu: number; rssKiB: number }> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-time-'));
  try {
    await spawnText('/usr/bin/time', ['-o', join(dir, 't'), '-f', '%e %U %S %M', c.cmd, ...c.args], c.env);
    const [e, u, s, m] = (await fsp.readFile(join(dir, 't'), 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
    return { wall: e, cpu: u + s, rssKiB: m };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

interface Best {
  seconds: number;
  cpu: number;
  peakRssKiB: number;
  runs: number[];
}

/**
 * Best of `n` runs of each command, in turns (a, b, c, a, b, c...), `reset` and a sync before
 * each: the shortest wall time and the least CPU time are kept apart, because on a shared
 * machine CPU time drifts far less than wall time does.
 */
async function bestInTurns(n: number, cmds: { c: Command; reset?: () => Promise<unknown> }[]): Promise<Best[]> {
  const out = cmds.map(() => ({ seconds: Infinity, cpu: Infinity, peakRssKiB: 0, runs: [] as number[] }));
  for (let i = 0; i < n; i++) {
    for (const [k, { c, reset }] of cmds.entries()) {
      await reset?.();
      await settle();
      const t = await timedCpu(c);
      const o = out[k];
      o.runs.push(t.wall);
      o.seconds = Math.min(o.seconds, t.wall);
      o.cpu = Math.min(o.cpu, t.cpu);
      o.peakRssKiB = Math.max(o.peakRssKiB, t.rssKiB);
    }
  }
  return out;
}

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Incompressible bytes, like a jar's deflated classes. */
function jarBytes(size: number, seed: number): Buffer {
  const key = createHash('sha256').update(`bench-jar:${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** Source-like text: compresses about 4x with gzip, as node_modules does. */
function jsText(size: number, seed: number): string {
  const words = ['module', 'exports', 'function', 'return', 'const', 'value', 'options', 'callback', 'require', 'this'];
  let s = `// ${seed}\n`;
  for (let i = 0; s.length < size; i++) s += `${words[(i * 7 + seed) % 10]}_${(i * 31 + seed) % 997} = ${words[(i + seed) % 10]}(${i});\n`;
  return s.slice(0, size);
}

/** target/lib/*.jar (0.2-1.4 MB each) and node_modules/ (scoped and plain packages, six files each). */
async function makeTree(root: string, jars: number, packages: number): Promise<number> {
  await fsp.rm(root, { recursive: true, force: true });
  let bytes = 0;
  await fsp.mkdir(join(root, 'lib'), { recursive: true });
  for (let i = 0; i < jars; i++) {
    const b = jarBytes(200_000 + ((i * 7919) % 1_200_000), i);
    await fsp.writeFile(join(root, 'lib', `dep-${i}-1.${i % 10}.jar`), b);
    bytes += b.length;
  }
  for (let i = 0; i < packages; i++) {
    const dir = join(root, 'node_modules', i % 5 === 0 ? `@scope${i % 3}/pkg-${i}` : `pkg-${i}`);
    await fsp.mkdir(join(dir, 'lib'), { recursive: true });
    const files: Record<string, string> = {
      'package.json': JSON.stringify({ name: `pkg-${i}`, version: '1.0.0', main: 'index.js' }),
      'index.js': jsText(2_000, i),
      'lib/a.js': jsText(12_000, i + 1),
      'lib/b.js': jsText(8_000, i + 2),
      'lib/c.js': jsText(4_000, i + 3),
      'README.md': jsText(3_000, i + 4),
    };
    for (const [p, c] of Object.entries(files)) {
      await fsp.writeFile(join(dir, p), c);
      bytes += c.length;
    }
  }
  return bytes;
}

const node = (args: string[], env: NodeJS.ProcessEnv = {}): Command => ({ cmd: process.execPath, args: [CLI, ...args], env });

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'bench/work/build' }, runs: { type: 'string', default: '3' }, jars: { type: 'string', default: '120' }, packages: { type: 'string', default: '400' } } });
  const work = resolve(values.out!);
  const runs = Number(values.runs);
  const tree = join(work, 'tree');
  const bytes = await makeTree(tree, Number(values.jars), Number(values.packages));
  const home = { BLOCKPORT_HOME: join(work, 'home') };
  const out = (n: string) => join(work, n);
  const rm = (...p: string[]) => () => Promise.all(p.map((x) => fsp.rm(x, { recursive: true, force: true })));
  const buildArgs = ['build', '--from', 'scratch', '--add', `${tree}/lib:/app/lib`, '--add', `${tree}/node_modules:/app/node_modules`, '--preset', 'java,node'];

  // the standard image of the same layers, for blockify: build's own layers, materialized
  await spawnText(process.execPath, [CLI, ...buildArgs, `oci:${out('built')}:1`], home);
  await fsp.rm(out('std'), { recursive: true, force: true });
  await spawnText(process.execPath, [CLI, 'materialize', `oci:${out('built')}:1`, `oci:${out('std')}:1`], home);
  const tars = (await fsp.readdir(join(out('std'), 'blobs', 'sha256'))).map((h) => join(out('std'), 'blobs', 'sha256', h));
  await warm(tars);

  const tarGzip: Command = {
    cmd: 'sh',
    args: ['-c', `tar -C ${tree} --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - lib node_modules | gzip -6 -n > ${out('layer.tar.gz')}`],
  };
  const [b, t, bf] = await bestInTurns(runs, [
    { c: node([...buildArgs, `oci:${out('run-build')}:1`], home), reset: rm(out('run-build')) },
    { c: tarGzip, reset: rm(out('layer.tar.gz')) },
    { c: node(['blockify', `oci:${out('std')}:1`, `oci:${out('run-bf')}:1`, '--preset', 'java,node'], home), reset: rm(out('run-bf')) },
  ]);
  const mb = bytes / 1e6;
  const row = (name: string, x: Best) => `${name.padEnd(22)}${x.seconds.toFixed(2)} s wall (${(mb / x.seconds).toFixed(0)} MB/s), ${x.cpu.toFixed(2)} s CPU, peak RSS ${(x.peakRssKiB / 1024).toFixed(0)} MB; runs ${x.runs.join(' ')}`;
  const ratio = (a: Best, z: Best) => `${(a.seconds / z.seconds).toFixed(2)}x wall, ${(a.cpu / z.cpu).toFixed(2)}x CPU`;
  const lines = [
    `tree: ${values.jars} jars + ${values.packages} node_modules packages, ${mb.toFixed(0)} MB; best of ${runs}, in turns`,
    row('blockport build', b),
    row('GNU tar + gzip -6', t),
    row('blockify (same image)', bf),
    `build / (tar + gzip): ${ratio(b, t)}; build / blockify: ${ratio(b, bf)}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await fsp.writeFile(join(work, 'results.json'), JSON.stringify({ bytes, runs, build: b, tarGzip: t, blockify: bf }, null, 2));
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
