/**
 * Memory stays flat as images grow: blockify and materialize stream layers and blocks, so a 1 GB
 * image needs about the memory a 100 MB one does. Inputs are docker-archives made by GNU tar (the
 * layer and the outer archive) of pseudo-random jars, one of them a quarter of the image; every
 * command runs as a child process whose peak RSS is measured by GNU time (or /proc VmHWM).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { CLI, NODE_FLAGS } from './cli.js';
import { FIXED_CREATED, gnuTarLayer, makeTree, readImage, run, tempDir, type FsNode } from './fixtures/images.js';

const MB = 1_000_000;
const RSS_LIMIT = 150 * MB;
const STEPS = ['blockify', 'materialize docker-archive', 'materialize oci'] as const;
type Step = (typeof STEPS)[number];

/** Peak RSS (bytes), wall time and output of one CLI run. */
interface Measured {
  rss: number;
  seconds: number;
  stdout: string;
}

/** Runs the CLI under GNU time (`%M`, KiB); without it, polls the child's VmHWM. */
function measure(args: string[], env: NodeJS.ProcessEnv, rssFile: string): Promise<Measured> {
  const gnuTime = existsSync('/usr/bin/time');
  const [cmd, argv] = gnuTime ? ['/usr/bin/time', ['-f', '%M', '-o', rssFile, process.execPath, ...NODE_FLAGS, CLI, ...args]] : [process.execPath, [...NODE_FLAGS, CLI, ...args]];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let hwm = 0;
    const poll = gnuTime ? undefined : setInterval(() => {
      readFile(`/proc/${child.pid}/status`, 'utf8').then((s) => (hwm = Math.max(hwm, Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0))), () => {});
    }, 20);
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('error', reject);
    child.on('close', async (code) => {
      clearInterval(poll);
      if (code !== 0) return reject(new Error(`blockport ${args.join(' ')} exited ${code}: ${stderr}`));
      const kib = gnuTime ? Number((await readFile(rssFile, 'utf8')).trim().split('\n').pop()) : hwm;
      resolve({ rss: kib * 1024, seconds: (performance.now() - started) / 1000, stdout });
    });
  });
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), h);
  return `sha256:${h.digest('hex')}`;
}

/** Jars of 2..16 MB adding up to `total` bytes, one of them a quarter of it. */
function jars(total: number, seed: number): FsNode[] {
  const nodes: FsNode[] = [{ path: 'app/lib/huge.jar', type: 'file', content: { size: Math.floor(total / 4), seed } }];
  let left = total - Math.floor(total / 4);
  for (let i = 0; left > 0; i++) {
    const size = Math.min(left, (2 + ((i * 7) % 15)) * MB + i);
    nodes.push({ path: `app/lib/dep-${i}.jar`, type: 'file', content: { size, seed: seed * 1000 + i } });
    left -= size;
  }
  nodes.push({ path: 'app/README', type: 'file', content: 'an application made of jars\n' });
  return nodes;
}

/**
 * A docker-archive by hand, as `docker save` lays it out: GNU tar packs the layer tree, then
 * manifest.json + config.json + layer.tar into the outer archive. Returns it and the diff_id.
 */
async function dockerArchive(dir: string, total: number, seed: number): Promise<{ file: string; diffId: string }> {
  const tree = join(dir, 'tree');
  await makeTree(tree, jars(total, seed));
  await gnuTarLayer(tree, join(dir, 'layer.tar'));
  await rm(tree, { recursive: true });
  const diffId = await sha256File(join(dir, 'layer.tar'));
  const config = { architecture: 'amd64', os: 'linux', created: FIXED_CREATED, config: { Cmd: ['java', '-jar', '/app/lib/huge.jar'] }, rootfs: { type: 'layers', diff_ids: [diffId] } };
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeFile(join(dir, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: ['jars:1'], Layers: ['layer.tar'] }]));
  const file = join(dir, 'image.tar');
  await run('tar', ['-C', dir, '--format=gnu', '-cf', file, 'manifest.json', 'config.json', 'layer.tar']);
  await rm(join(dir, 'layer.tar'));
  return { file, diffId };
}

describe('peak memory does not grow with image size', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let big = 1000 * MB;
  const results = new Map<string, Record<Step, Measured>>();

  before(async () => {
    t = await tempDir('memory');
    // blocks, two materialized copies, the archive and the tree at once: about 5x the image
    const fs = await statfs(t.dir);
    if (fs.bavail * fs.bsize < 6 * big) big = 600 * MB;
  });
  after(() => t.cleanup());

  for (const [label, size] of [['100 MB', () => 100 * MB], ['1 GB', () => big]] as const) {
    it(`blockify and materialize ${label} of jars in under ${RSS_LIMIT / MB} MB`, async (tc) => {
      if (label === '1 GB' && big !== 1000 * MB) tc.diagnostic(`disk too small: the large image is scaled down to ${big / MB} MB`);
      const dir = join(t.dir, label.replace(' ', ''));
      const env = { BLOCKPORT_HOME: join(dir, 'home') };
      const { file, diffId } = await dockerArchive(dir, size(), label.length);
      const rssFile = join(dir, 'rss');
      const r = {} as Record<Step, Measured>;
      r.blockify = await measure(['blockify', `docker-archive:${file}`, 'jars:1', '--preset', 'java', '--json'], env, rssFile);
      const stats = JSON.parse(r.blockify.stdout);
      // the uncompressed block-form layer: about 1.5 kB of import entry per block
      assert.ok(stats.blocks.length >= 2 && stats.layers[0].outputSize < 4096 * stats.blocks.length, `blocks ${stats.blocks.length}, layer ${stats.layers[0].outputSize}`);
      await rm(file);
      const out = join(dir, 'out.tar');
      r['materialize docker-archive'] = await measure(['materialize', 'jars:1', `docker-archive:${out}`], env, rssFile);
      const manifest = JSON.parse((await run('tar', ['-xOf', out, 'manifest.json'])).stdout);
      assert.equal(manifest[0].Layers[0], `${diffId.slice(7)}.tar`);
      await rm(out);
      r['materialize oci'] = await measure(['materialize', 'jars:1', `oci:${join(dir, 'oci')}:1`], env, rssFile);
      assert.equal((await readImage(join(dir, 'oci'), '1')).manifest.layers[0].digest, diffId);
      await rm(dir, { recursive: true });

      for (const step of STEPS) {
        tc.diagnostic(`${label} (${(size() / MB).toFixed(0)} MB): ${step}: peak RSS ${(r[step].rss / MB).toFixed(1)} MB, ${r[step].seconds.toFixed(1)} s`);
        assert.ok(r[step].rss < RSS_LIMIT, `${step} of ${label}: peak RSS ${(r[step].rss / MB).toFixed(1)} MB`);
      }
      results.set(label, r);
    });
  }

  it('the large image costs less than 1.5x the small one + 20 MB', (tc) => {
    const small = results.get('100 MB');
    const large = results.get('1 GB');
    assert.ok(small && large, 'both runs measured');
    for (const step of STEPS) {
      const bound = 1.5 * small[step].rss + 20 * MB;
      tc.diagnostic(`${step}: ${(large[step].rss / MB).toFixed(1)} MB vs bound ${(bound / MB).toFixed(1)} MB`);
      assert.ok(large[step].rss < bound, `${step}: ${(large[step].rss / MB).toFixed(1)} MB >= ${(bound / MB).toFixed(1)} MB`);
    }
  });
});
