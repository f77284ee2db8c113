/**
 * A vendor and its customers for the update-bundle tests: images built by GNU tar + umoci (app:1,
 * app:2 with one jar and the application changed, worker:1 sharing app:2's jars), blockified into a
 * vendor store, and a signing key. Every blockport call is a child process, as a user runs it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { blockport, type CliResult } from './cli.js';
import { gnuTarLayer, javaLikeTree, makeTree, run, tempDir, umociImage, type FsNode } from './fixtures/images.js';

export interface Scenario {
  dir: string;
  /** The vendor's standard images: tags 1, 2 and w1. */
  oci: string;
  /** The vendor's store (BLOCKPORT_HOME) with app:1, app:2, worker:1 in block form. */
  vendor: string;
  key: string;
  pub: string;
  /** Size of the one jar that changed from v1 to v2. */
  changedJar: number;
  /** Uncompressed size of the jars layer. */
  jarLayer: number;
  cleanup(): Promise<void>;
}

const JARS = { jars: 14, seed: 5, minSize: 150_000, maxSize: 600_000 };
const CHANGED = 3;

function appTree(version: number): FsNode[] {
  return [
    { path: 'app/app.jar', type: 'file', content: { size: 40_000, seed: 100 + version } },
    { path: 'app/config.yml', type: 'file', content: `version: ${version}\n` },
  ];
}

/** Runs blockport with BLOCKPORT_HOME=home; `extra` adds environment. */
export function bp(home: string, args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return blockport(args, { BLOCKPORT_HOME: home, ...extra });
}

/** Like `bp`, failing the test with stderr unless the exit code is 0. */
export async function bpOk(home: string, args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const r = await bp(home, args, extra);
  if (r.code !== 0) throw new Error(`blockport ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

export async function vendorScenario(): Promise<Scenario> {
  const t = await tempDir('bundle');
  const dir = t.dir;
  const at = (n: string) => join(dir, n);
  const v2jars = javaLikeTree({ ...JARS, changed: [CHANGED] });
  const trees: Record<string, FsNode[]> = {
    base: [{ path: 'etc/os-release', type: 'file', content: 'ID=fixture\n' }, { path: 'bin/sh', type: 'file', mode: 0o755, content: { size: 200_000, seed: 1 } }],
    jars1: javaLikeTree(JARS),
    jars2: v2jars,
    app1: appTree(1),
    app2: appTree(2),
    worker: [{ path: 'srv/worker.jar', type: 'file', content: { size: 30_000, seed: 300 } }],
  };
  await gnuTarLayers(dir, trees);
  const oci = at('oci');
  await umociImage(oci, '1', [at('base.tar'), at('jars1.tar'), at('app1.tar')]);
  await umociImage(oci, '2', [at('base.tar'), at('jars2.tar'), at('app2.tar')]);
  await umociImage(oci, 'w1', [at('base.tar'), at('jars2.tar'), at('worker.tar')]);
  const vendor = at('vendor');
  await bpOk(vendor, ['blockify', `oci:${oci}:1`, 'app:1', '--preset', 'java']);
  await bpOk(vendor, ['blockify', `oci:${oci}:2`, 'app:2', '--preset', 'java']);
  await bpOk(vendor, ['blockify', `oci:${oci}:w1`, 'worker:1', '--preset', 'java']);
  await bpOk(vendor, ['keygen', '-o', at('vendor')]);
  const jar = v2jars.find((n) => n.path.startsWith(`usr/share/java/lib-${CHANGED}-`))!;
  return {
    dir,
    oci,
    vendor,
    key: at('vendor.key'),
    pub: at('vendor.pub'),
    changedJar: (jar.content as { size: number }).size,
    jarLayer: (await stat(at('jars2.tar'))).size,
    cleanup: t.cleanup,
  };
}

/** Makes each tree under `dir/NAME` and its layer `dir/NAME.tar` with GNU tar. */
export async function gnuTarLayers(dir: string, trees: Record<string, FsNode[]>): Promise<void> {
  for (const [name, nodes] of Object.entries(trees)) {
    await makeTree(join(dir, name), nodes);
    await gnuTarLayer(join(dir, name), join(dir, `${name}.tar`));
  }
}

/**
 * Two releases built from `trees` (layers by name, in order: `v1` and `v2`) as tags 1 and 2 of
 * `dir/oci`, blockified into the vendor store `dir/vendor` as app:1 and app:2, and a customer
 * store `dir/customer-v1` holding app:1 (applied from a full bundle).
 */
export async function twoReleases(dir: string, trees: Record<string, FsNode[]>, v1: string[], v2: string[]): Promise<{ oci: string; vendor: string; customerV1: string }> {
  const at = (n: string) => join(dir, n);
  await gnuTarLayers(dir, trees);
  const oci = at('oci');
  await umociImage(oci, '1', v1.map((n) => at(`${n}.tar`)));
  await umociImage(oci, '2', v2.map((n) => at(`${n}.tar`)));
  const vendor = at('vendor');
  await bpOk(vendor, ['blockify', `oci:${oci}:1`, 'app:1', '--preset', 'java']);
  await bpOk(vendor, ['blockify', `oci:${oci}:2`, 'app:2', '--preset', 'java']);
  const customerV1 = at('customer-v1');
  await bpOk(vendor, ['bundle', '--to', 'app:1', '-o', at('app-1.bpk')]);
  await bpOk(customerV1, ['apply', at('app-1.bpk')]);
  return { oci, vendor, customerV1 };
}

/** Copies a store (or any folder) with everything kept. */
export async function copyDir(from: string, to: string): Promise<void> {
  await run('cp', ['-a', from, to]);
}

/** Every file under `root` with its size and sha256: two equal listings are the same visible state. */
export async function listing(root: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const n of (await readdir(d, { withFileTypes: true }).catch(() => [])).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, n.name);
      const rel = relative(root, p);
      if (skip(rel)) continue;
      if (n.isDirectory()) await walk(p);
      else out.push(`${rel} ${createHash('sha256').update(await readFile(p)).digest('hex').slice(0, 16)}`);
    }
  };
  await walk(root);
  return out;
}

/** The visible state of a store: blobs, index.json and oci-layout (not locks, staging or trust). */
export function storeState(home: string): Promise<string[]> {
  return listing(home, (rel) => rel === '.lock' || rel === '.index.lock' || rel.startsWith('staging') || rel.startsWith('trust'));
}

/**
 * Applies `file` to `home`, a fresh copy of the store `from` (after `damage`, if given), expecting
 * a one-line error with `code` and `message`, and checks nothing visible changed, no staging left.
 */
export async function refusedApply(from: string, home: string, file: string, code: number, message: RegExp, opts: { env?: NodeJS.ProcessEnv; damage?: (home: string) => Promise<void> } = {}): Promise<void> {
  await copyDir(from, home);
  await opts.damage?.(home);
  const before = await storeState(home);
  const r = await bp(home, ['apply', file], opts.env);
  assert.equal(r.code, code, r.stderr);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.deepEqual(await storeState(home), before);
  assert.deepEqual((await readdir(home)).filter((f) => f === 'staging'), [], 'no staging left');
}

/** The bundle.json of a bundle file (its first member), parsed. */
export async function bundleManifest(file: string): Promise<{ blobs: { digest: string; size: number; storedSize: number; encoding: string }[]; prerequisites: unknown[]; targets: { name: string }[] }> {
  const bytes = await readFile(file);
  const size = Number.parseInt(bytes.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim(), 8);
  return JSON.parse(bytes.subarray(512, 512 + size).toString('utf8'));
}
