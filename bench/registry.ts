// Bytes a v1 -> v2 upgrade moves through a registry: `blockport push` / `blockport pull` of the
// block-form images against `skopeo copy` of the standard images, on the same scenario images and
// one local registry (distribution's `docker-registry` on 127.0.0.1).
//
//   node dist/bench/scenarios.js --out bench/work --only java,node   # once (cached)
//   node dist/bench/registry.js [--out bench/work] [--only java,node] [--json]
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startRegistry } from '../test/fixtures/registry.js';
import { run } from './exec.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const PRESETS: Record<string, string> = { java: 'java', node: 'node', teams: 'java' };

interface Row {
  upgrade: string;
  /** Bytes of blobs that v2 adds, moved by each tool. */
  blockportPush: number;
  blockportPull: number;
  skopeoPush: number;
  skopeoPull: number;
  blobs: { blockportPush: number; blockportPull: number; skopeoPush: number; skopeoPull: number };
}

/** Every blob file below a blob folder (registry storage or an OCI layout): digest -> size. */
async function blobFiles(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name === 'data' || /^[0-9a-f]{64}$/.test(e.name)) out.set(e.name === 'data' ? d : e.name, (await fsp.stat(p)).size);
    }
  };
  await walk(dir);
  return out;
}

/** Bytes and count of the blobs `after` has and `before` had not. */
function added(before: Map<string, number>, after: Map<string, number>): { bytes: number; blobs: number } {
  let bytes = 0;
  let blobs = 0;
  for (const [k, v] of after) if (!before.has(k)) (bytes += v), blobs++;
  return { bytes, blobs };
}

async function blockport(args: string[], home: string): Promise<{ stats: { moved: { blobs: number; bytes: number } } }> {
  const out = await run(process.execPath, [CLI, ...args, '--json'], { env: { ...process.env, BLOCKPORT_HOME: home } });
  return JSON.parse(out);
}

async function skopeo(src: string, dst: string): Promise<void> {
  const tls = [...(src.startsWith('docker://') ? ['--src-tls-verify=false'] : []), ...(dst.startsWith('docker://') ? ['--dest-tls-verify=false'] : [])];
  await run('skopeo', ['copy', '--quiet', '--insecure-policy', ...tls, src, dst]);
}

async function measure(scenario: string, layout: string, work: string): Promise<Row> {
  const reg = await startRegistry(join(work, `registry-${scenario}`));
  try {
    const vendor = join(work, `vendor-${scenario}`);
    // gzip, as blockify does for docker:// outputs: rewritten layers keep compressing for the registry
    for (const v of ['v1', 'v2']) await blockport(['blockify', `oci:${layout}:${scenario}-${v}`, `app:${v}`, '--preset', PRESETS[scenario], '--compress', 'gzip'], vendor);
    await blockport(['push', 'app:v1', `docker://${reg.host}/bp/app:v1`], vendor);
    const push = await blockport(['push', 'app:v2', `docker://${reg.host}/bp/app:v2`], vendor);
    const team = join(work, `team-${scenario}`);
    await blockport(['pull', `docker://${reg.host}/bp/app:v1`, 'app:v1'], team);
    const pull = await blockport(['pull', `docker://${reg.host}/bp/app:v2`, 'app:v2'], team);

    const storage = join(work, `registry-${scenario}`, 'data');
    await skopeo(`oci:${layout}:${scenario}-v1`, `docker://${reg.host}/std/app:v1`);
    const beforePush = await blobFiles(storage);
    await skopeo(`oci:${layout}:${scenario}-v2`, `docker://${reg.host}/std/app:v2`);
    const skopeoPush = added(beforePush, await blobFiles(storage));
    const dst = join(work, `skopeo-pull-${scenario}`);
    await skopeo(`docker://${reg.host}/std/app:v1`, `oci:${dst}:v1`);
    const beforePull = await blobFiles(join(dst, 'blobs'));
    await skopeo(`docker://${reg.host}/std/app:v2`, `oci:${dst}:v2`);
    const skopeoPull = added(beforePull, await blobFiles(join(dst, 'blobs')));
    return {
      upgrade: `${scenario} v1->v2`,
      blockportPush: push.stats.moved.bytes,
      blockportPull: pull.stats.moved.bytes,
      skopeoPush: skopeoPush.bytes,
      skopeoPull: skopeoPull.bytes,
      blobs: { blockportPush: push.stats.moved.blobs, blockportPull: pull.stats.moved.blobs, skopeoPush: skopeoPush.blobs, skopeoPull: skopeoPull.blobs },
    };
  } finally {
    await reg.stop();
  }
}

const mb = (n: number) => `${(n / 1e6).toFixed(n < 1e6 ? 3 : 1)} MB`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'bench/work' }, only: { type: 'string', default: 'java,node' }, json: { type: 'boolean' } } });
  const set = JSON.parse(await fsp.readFile(join(resolve(values.out!), 'scenarios.json'), 'utf8')) as { layout: string };
  const work = await fsp.mkdtemp(join(tmpdir(), 'blockport-bench-registry-'));
  try {
    const rows: Row[] = [];
    for (const s of values.only!.split(',')) rows.push(await measure(s, set.layout, work));
    if (values.json) return void process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    console.log('| upgrade | blockport push | skopeo copy (push) | blockport pull | skopeo copy (pull) |');
    console.log('|---|---|---|---|---|');
    for (const r of rows) {
      const x = (a: number, b: number) => (a <= 0 ? '' : b >= a ? ` (${(b / a).toFixed(b / a >= 10 ? 0 : 1)}x less)` : ` (${(a / b).toFixed(1)}x more)`);
      console.log(`| ${r.upgrade} | ${mb(r.blockportPush)}, ${r.blobs.blockportPush} blobs${x(r.blockportPush, r.skopeoPush)} | ${mb(r.skopeoPush)}, ${r.blobs.skopeoPush} blobs | ${mb(r.blockportPull)}, ${r.blobs.blockportPull} blobs${x(r.blockportPull, r.skopeoPull)} | ${mb(r.skopeoPull)}, ${r.blobs.skopeoPull} blobs |`);
    }
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
