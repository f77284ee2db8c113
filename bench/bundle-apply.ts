/**
 * Update-bundle benchmark (not a test): how long a receiver needs to get a runnable v2 from an
 * update bundle (apply + materialize to docker-archive), against `skopeo copy` of the whole v2 to a
 * docker-archive and against extracting and re-tarring every layer with GNU tar (rebuilding the
 * image on site, the usual workaround). Sizes: the bundle against the layer-level update.
 *
 *   node dist/bench/bundle-apply.js oci:DIR:1 oci:DIR:2 [--preset java] [--work DIR]
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

const bp = (home: string, args: string[]) => sh(process.execPath, [CLI, ...args], { BLOCKPORT_HOME: home });

async function timed(what: string, f: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await f();
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`  ${what}: ${s.toFixed(2)} s`);
  return s;
}

/** Extracts each layer of a docker-archive with GNU tar and packs it again. */
async function retar(archive: string, work: string): Promise<void> {
  const dir = join(work, 'retar');
  await mkdir(dir, { recursive: true });
  await sh('tar', ['-xf', archive, '-C', dir]);
  const [m] = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
  for (const [i, layer] of (m.Layers as string[]).entries()) {
    const root = join(dir, `rootfs-${i}`);
    await mkdir(root);
    await sh('tar', ['-xpf', join(dir, layer), '-C', root, '--numeric-owner', '--xattrs', '--xattrs-include=*']);
    await sh('tar', ['-cf', join(dir, `layer-${i}.tar`), '-C', root, '--sort=name', '--numeric-owner', '--format=posix', '--xattrs', '--xattrs-include=*', '.']);
  }
}

async function main(argv: string[]): Promise<void> {
  const flag = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  const [v1, v2] = argv.filter((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
  if (!v1 || !v2) throw new Error('usage: bundle-apply.js V1REF V2REF [--preset java] [--work DIR]');
  const preset = flag('--preset') ?? 'java';
  const work = flag('--work') ?? (await mkdtemp(join(tmpdir(), 'blockport-bench-')));
  const vendor = join(work, 'vendor');
  const customer = join(work, 'customer');
  console.log(`work folder ${work}`);
  await bp(vendor, ['blockify', v1, 'app:1', '--preset', preset]);
  await bp(vendor, ['blockify', v2, 'app:2', '--preset', preset]);
  await bp(vendor, ['bundle', '--to', 'app:1', '-o', join(work, 'app-1.bpk')]);
  const plan = JSON.parse(await bp(vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', join(work, 'app-2.bpk'), '--json'])).plan;
  await bp(customer, ['apply', join(work, 'app-1.bpk')]);
  const bundle = (await stat(join(work, 'app-2.bpk'))).size;
  console.log(`bundle ${bundle} bytes; layer-level update ${plan.sizes.layerLevel} bytes (${(plan.sizes.layerLevel / bundle).toFixed(0)}x); image ${plan.sizes.image} bytes`);
  const ours = await timed('apply + materialize to docker-archive', async () => {
    await bp(customer, ['apply', join(work, 'app-2.bpk')]);
    await bp(customer, ['materialize', 'app:2', `docker-archive:${join(work, 'ours.tar')}:app:2`]);
  });
  const skopeo = await timed('skopeo copy to docker-archive', () => sh('skopeo', ['copy', '--quiet', '--insecure-policy', v2, `docker-archive:${join(work, 'skopeo.tar')}:app:2`]));
  const gnu = await timed('GNU tar extract + re-tar of every layer', () => retar(join(work, 'ours.tar'), work));
  console.log(`ratios: skopeo / blockport ${(skopeo / ours).toFixed(2)}, GNU tar / blockport ${(gnu / ours).toFixed(2)}`);
  if (!flag('--work')) await rm(work, { recursive: true, force: true });
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
