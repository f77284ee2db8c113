/**
 * A self-contained demo: makes two versions of a Java-like service image locally (no network),
 * blockifies both into a throw-away store, materializes v2 back to a docker-archive and shows the
 * sizes involved. Run with `npm run demo`.
 */
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { writeDockerArchiveFile } from '../src/oci/docker-archive.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../src/tar/writer.js';
import type { Digest } from '../src/digest/digest.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MTIME = 1_700_000_000;

/** Deterministic incompressible bytes, like a compiled jar. */
function* bytes(size: number, seed: string): Generator<Buffer> {
  const c = createCipheriv('aes-128-ctr', createHash('sha256').update(seed).digest().subarray(0, 16), Buffer.alloc(16));
  for (let left = size; left > 0; left -= 1 << 20) yield c.update(Buffer.alloc(Math.min(left, 1 << 20)));
}

type File = { path: string; size: number; seed: string };

async function layer(file: string, dirs: string[], files: File[]): Promise<{ diffId: Digest; size: number }> {
  async function* tar() {
    for (const d of dirs) yield encodeHeader({ path: d, type: 'dir', mode: 0o755, mtime: MTIME });
    for (const f of files) {
      yield encodeHeader({ path: f.path, type: 'file', size: f.size, mode: 0o644, mtime: MTIME, uname: 'root', gname: 'root' });
      yield* bytes(f.size, f.seed);
      yield padding(f.size);
    }
    yield END_OF_ARCHIVE;
  }
  await pipeline(Readable.from(tar()), createWriteStream(file));
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return { diffId: `sha256:${h.digest('hex')}` as Digest, size: (await fsp.stat(file)).size };
}

async function image(dir: string, version: number, bumped: number): Promise<string> {
  const jars: File[] = Array.from({ length: 40 }, (_, i) => ({
    path: `app/lib/dep-${i}-1.${i === bumped && version > 1 ? 1 : 0}.jar`,
    size: 200_000 + ((i * 7919) % 40) * 50_000,
    seed: `jar-${i}-${i === bumped && version > 1 ? 'new' : 'old'}`,
  }));
  const base = await layer(join(dir, `base-${version}.tar`), ['etc/'], [{ path: 'etc/os-release', size: 300, seed: 'os' }]);
  const deps = await layer(join(dir, `deps-${version}.tar`), ['app/', 'app/lib/'], jars);
  const app = await layer(join(dir, `app-${version}.tar`), ['app/'], [{ path: 'app/service.jar', size: 150_000, seed: `app-${version}` }]);
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { Cmd: ['java', '-jar', '/app/service.jar'] },
    rootfs: { type: 'layers', diff_ids: [base.diffId, deps.diffId, app.diffId] },
  }));
  const layers = [['base', base], ['deps', deps], ['app', app]] as const;
  const out = join(dir, `app-${version}.tar`.replace('.tar', '.docker.tar'));
  await writeDockerArchiveFile(out, {
    configBytes: config,
    repoTags: [`demo/app:${version}`],
    layers: layers.map(([name, l]) => ({ diffId: l.diffId, size: l.size, open: async () => createReadStream(join(dir, `${name}-${version}.tar`)) })),
  });
  return out;
}

function blockport(args: string[], env: NodeJS.ProcessEnv): string {
  console.log(`\n$ blockport ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });
  process.stdout.write(r.stdout);
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    process.exit(r.status ?? 1);
  }
  return r.stdout;
}

async function main(): Promise<void> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-demo-'));
  const env = { BLOCKPORT_HOME: join(dir, 'store') };
  try {
    console.log('Making two versions of a service image: 40 dependency jars, v2 bumps one of them and the app.');
    const v1 = await image(dir, 1, 7);
    const v2 = await image(dir, 2, 7);
    blockport(['blockify', `docker-archive:${v1}`, 'demo/app:1', '--preset', 'java'], env);
    blockport(['blockify', `docker-archive:${v2}`, 'demo/app:2', '--preset', 'java'], env);
    blockport(['images'], env);

    console.log('\nThe customer already runs v1 (delivered as a full bundle). The vendor ships v2 as an update bundle:');
    const customer = { BLOCKPORT_HOME: join(dir, 'customer') };
    const full = join(dir, 'app-1-full.bpk');
    const update = join(dir, 'app-2-update.bpk');
    blockport(['bundle', '--to', 'demo/app:1', '-o', full], env);
    blockport(['apply', full], customer);
    blockport(['bundle', '--to', 'demo/app:2', '--since', 'demo/app:1', '--dry-run'], env);
    blockport(['bundle', '--to', 'demo/app:2', '--since', 'demo/app:1', '-o', update], env);
    blockport(['apply', update], customer);
    const out = join(dir, 'app-2-again.tar');
    blockport(['materialize', 'demo/app:2', `docker-archive:${out}:demo/app:2`], customer);
    const a = (await fsp.stat(v2)).size;
    const b = (await fsp.stat(out)).size;
    const u = (await fsp.stat(update)).size;
    console.log(`\nv2 as docker save output: ${a} bytes. Update bundle v1 -> v2: ${u} bytes (${(a / u).toFixed(0)}x smaller).`);
    console.log(`Materialized on the customer side: ${b} bytes, same diff_ids and config as the vendor's v2 (checked while writing).`);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

await main();
