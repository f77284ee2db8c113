/**
 * What keeping the vendor's exact image costs (docs/spec.md 17.5): one gzip -6 -n layer in an OCI
 * layout, blockified with and without --no-original, materialized to oci: as the original (the
 * vendor's manifest digest) and with --compress none, against `gzip -6 -n` of the same layer and
 * `skopeo copy` of the standard image, best of three runs taken in turns.
 *
 *   node dist/bench/measure-original.js [LAYER.tar]
 *
 * Without an argument the layer is GNU tar of /usr/share/perl and /usr/lib/x86_64-linux-gnu/perl.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './exec.js';
import { bestInTurns, type Command } from './measure-exec.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function putBlob(dir: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha(bytes);
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

/** An OCI layout tagged v1 whose one layer is `tar` compressed by `gzip -6 -n`; returns the manifest digest. */
async function vendorLayout(dir: string, tar: string): Promise<string> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await run('sh', ['-c', `gzip -6 -n < '${tar}' > '${dir}/layer.gz'`]);
  const layer = await putBlob(dir, await readFile(join(dir, 'layer.gz')));
  await rm(join(dir, 'layer.gz'));
  const diffId = sha(await readFile(tar));
  const config = await putBlob(dir, Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } })));
  const manifest = Buffer.from(`${JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }] }, null, 3)}\n`);
  const m = await putBlob(dir, manifest);
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
  return m.digest;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'blockport-original-'));
  try {
    let tar = process.argv[2];
    if (!tar) {
      tar = join(work, 'layer.tar');
      await run('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1600000000', '-cf', tar, '/usr/share/perl', '/usr/lib/x86_64-linux-gnu/perl']);
    }
    const vendor = join(work, 'vendor');
    const digest = await vendorLayout(vendor, tar);
    const node = (home: string, args: string[]): Command => ({ cmd: process.execPath, args: [CLI, ...args], env: { ...process.env, BLOCKPORT_HOME: join(work, home) } });
    const rules = ['--preset', 'auto', '--min-size', '64K'];
    await run(process.execPath, [CLI, 'blockify', `oci:${vendor}:v1`, 'app:1', ...rules], { env: { ...process.env, BLOCKPORT_HOME: join(work, 'm') } });
    const clean = (...paths: string[]) => () => Promise.all(paths.map((p) => rm(join(work, p), { recursive: true, force: true })));
    const rows: [string, Command, () => Promise<unknown>][] = [
      ['gzip -6 -n of the layer', { cmd: 'sh', args: ['-c', `gzip -6 -n < '${tar}' > /dev/null`] }, async () => {}],
      ['skopeo copy oci: to oci: (standard image)', { cmd: 'skopeo', args: ['copy', '--quiet', '--insecure-policy', `oci:${vendor}:v1`, `oci:${join(work, 'copy')}:v1`] }, clean('copy')],
      ['blockify (keeps the source, finds the compressor)', node('b', ['blockify', `oci:${vendor}:v1`, 'app:1', ...rules]), clean('b')],
      ['blockify --no-original', node('b', ['blockify', `oci:${vendor}:v1`, 'app:1', ...rules, '--no-original']), clean('b')],
      ['materialize to oci: (original: the vendor digest)', node('m', ['materialize', 'app:1', `oci:${join(work, 'orig')}:v1`]), clean('orig')],
      ['materialize to oci: --compress none', node('m', ['materialize', 'app:1', `oci:${join(work, 'none')}:v1`, '--compress', 'none']), clean('none')],
    ];
    const t = await bestInTurns(3, rows.map(([, c, reset]) => ({ c, reset })));
    await run(process.execPath, [CLI, 'materialize', 'app:1', `oci:${join(work, 'orig')}:v1`], { env: { ...process.env, BLOCKPORT_HOME: join(work, 'm') } });
    const index = JSON.parse(await readFile(join(work, 'orig', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    if (index.manifests[0].digest !== digest) throw new Error(`materialize wrote ${index.manifests[0].digest}, not the vendor's ${digest}`);
    const base = t[0].seconds;
    console.log(`layer: ${tar}; vendor manifest ${digest} written back byte for byte`);
    console.log('| command | seconds (best of 3) | x gzip -6 | peak RSS |');
    console.log('|---|---|---|---|');
    for (const [i, [name]] of rows.entries()) console.log(`| ${name} | ${t[i].seconds.toFixed(2)} | ${(t[i].seconds / base).toFixed(2)} | ${(t[i].peakRssKiB / 1024).toFixed(0)} MB |`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
