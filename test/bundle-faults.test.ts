/**
 * Applying a bundle when things go wrong: a truncated or altered bundle, a wrong or missing
 * signature, a missing prerequisite, two applies at once, kill -9 at random points, a full disk.
 * Each must end in a one-line error (or, after a kill, a re-run that finishes) with the store's
 * visible state unchanged and `blockport fsck` clean.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { CLI, NODE_FLAGS } from './cli.js';
import { readImage, run } from './fixtures/images.js';
import { bp, bpOk, bundleManifest, copyDir, storeState, vendorScenario, type Scenario } from './bundle-helpers.js';

let s: Scenario;
let customerV1: string;
let app1: string;
let app2: string;

before(async () => {
  s = await vendorScenario();
  app1 = join(s.dir, 'app-1.bpk');
  app2 = join(s.dir, 'app-2.bpk');
  await bpOk(s.vendor, ['bundle', '--to', 'app:1', '-o', app1, '--sign', s.key]);
  await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', app2, '--sign', s.key]);
  customerV1 = join(s.dir, 'customer-v1');
  await bpOk(customerV1, ['apply', app1, '--trust', s.pub]);
});
after(() => s?.cleanup());

let n = 0;
async function customer(): Promise<string> {
  const home = join(s.dir, `c${n++}`);
  await copyDir(customerV1, home);
  return home;
}

/** Runs a failing apply: checks the exit code, the one-line message and that nothing visible changed. */
async function refused(home: string, args: string[], code: number, message: RegExp): Promise<void> {
  const before = await storeState(home);
  const r = await bp(home, ['apply', ...args]);
  assert.equal(r.code, code, `exit ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.deepEqual(await storeState(home), before);
  assert.deepEqual(await readdir(home).then((x) => x.filter((f) => f === 'staging')), [], 'no staging left');
}

/** `blockport fsck` finds nothing wrong. */
async function clean(home: string): Promise<void> {
  const r = await bp(home, ['fsck', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(JSON.parse(r.stdout).ok, true);
}

/**
 * What a reader of the store may see at any moment: every blob file whole (its digest is its
 * name) and a tag only when all the blobs of its bundle are there. Checked without locking.
 */
async function consistent(home: string, bundle: string): Promise<void> {
  const dir = join(home, 'blobs', 'sha256');
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    assert.match(f, /^[0-9a-f]{64}$/, `only whole blobs in blobs/sha256: ${f}`);
    assert.equal(createHash('sha256').update(await readFile(join(dir, f))).digest('hex'), f);
  }
  const index = await readFile(join(home, 'index.json'), 'utf8').catch(() => undefined);
  if (!index || JSON.parse(index).manifests.length === 0) return;
  const present = new Set(await readdir(dir));
  for (const b of (await bundleManifest(bundle)).blobs) assert.ok(present.has(b.digest.slice(7)), `tagged, so ${b.digest} is present`);
}

/** Member offsets of a tar file: name -> [data offset, size]. */
async function members(file: string): Promise<Map<string, [number, number]>> {
  const b = await readFile(file);
  const out = new Map<string, [number, number]>();
  for (let off = 0; off + 512 <= b.length && b[off] !== 0; ) {
    const name = b.subarray(off, off + 100).toString('latin1').replace(/\0.*$/s, '');
    const size = Number.parseInt(b.subarray(off + 124, off + 136).toString('latin1'), 8);
    out.set(name, [off + 512, size]);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

async function altered(name: string, change: (b: Buffer) => Buffer): Promise<string> {
  const file = join(s.dir, name);
  await writeFile(file, change(await readFile(app2)));
  return file;
}

test('a truncated bundle is refused and changes nothing', async () => {
  const home = await customer();
  const size = (await readFile(app2)).length;
  const jar = [...(await members(app2)).values()].find(([, sz]) => sz === s.changedJar)!;
  for (const [name, cut] of [['t-blob', jar[0] + 1000], ['t-end', size - 1024], ['t-head', 700]] as const) {
    const file = await altered(`${name}.bpk`, (b) => b.subarray(0, cut));
    await refused(home, [file], 4, /^blockport: .*truncated/);
  }
  await clean(home);
});

test('one flipped byte in a blob is a digest mismatch; in bundle.json a bad signature', async () => {
  const home = await customer();
  const jar = [...(await members(app2)).entries()].find(([, [, sz]]) => sz === s.changedJar)!;
  const flipped = await altered('flip.bpk', (b) => {
    b[jar[1][0] + Math.floor(s.changedJar / 2)] ^= 0x20;
    return b;
  });
  await refused(home, [flipped], 4, new RegExp(`^blockport: .*${jar[0].split('/').pop()}: digest mismatch`));
  const renamed = await altered('renamed.bpk', (b) => Buffer.from(b.toString('latin1').replace('"name":"app:2"', '"name":"app:3"'), 'latin1'));
  await refused(home, [renamed, '--trust', s.pub], 8, /signature does not verify/);
  await clean(home);
});

test('a bundle signed by another key, or unsigned, is refused when a key is trusted', async () => {
  const home = await customer();
  await bpOk(home, ['keygen', '-o', join(s.dir, 'mallory')]);
  const other = join(s.dir, 'other.bpk');
  const unsigned = join(s.dir, 'unsigned.bpk');
  await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', other, '--sign', join(s.dir, 'mallory.key')]);
  await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', unsigned]);
  await refused(home, [other, '--trust', s.pub], 8, /signed by an untrusted key sha256:/);
  await refused(home, [unsigned, '--trust', s.pub], 8, /is not signed/);
  // a key in the store's trust folder applies without --trust
  await mkdir(join(home, 'trust'));
  await writeFile(join(home, 'trust', 'vendor.pub'), await readFile(s.pub));
  await refused(home, [unsigned], 8, /is not signed.*trust\/vendor\.pub/);
  await bpOk(home, ['apply', app2]);
});

test('missing prerequisites are listed and nothing is written', async () => {
  const home = join(s.dir, 'empty-store');
  await mkdir(home);
  await refused(home, [app2], 6, /^blockport: .*needs .*this store lacks.*sha256:[0-9a-f]{64}/);
  assert.deepEqual(await readdir(home), [], 'not even a staging folder');
});

test('a second apply while one runs gets ELOCKED at once', async () => {
  const home = await customer();
  const fifo = join(s.dir, 'slow.bpk');
  await run('mkfifo', [fifo]);
  // the first apply takes the lock, then waits for its bundle to arrive through the FIFO
  const first = spawnApply(home, [fifo]);
  await waitFor(() => readdir(home).then((x) => x.includes('.lock')));
  try {
    await refused(home, [app2], 7, /^blockport: the store .* is in use by process \d+ .*try again when it finishes/);
  } finally {
    await pipeline(createReadStream(app2), createWriteStream(fifo));
  }
  assert.equal(await first.exit, 0);
  const images = JSON.parse((await bpOk(home, ['images', '--json'])).stdout);
  assert.deepEqual(images.map((i: { name: string }) => i.name).sort(), ['app:1', 'app:2']);
});

function spawnApply(home: string, files: string[]): { child: ChildProcess; exit: Promise<number> } {
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, 'apply', ...files], { env: { ...process.env, BLOCKPORT_HOME: home }, stdio: 'ignore' });
  return { child, exit: new Promise((r) => child.on('close', (code, signal) => r(code ?? (signal ? -1 : 0)))) };
}

async function waitFor(cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  for (const start = Date.now(); !(await cond()); ) {
    if (Date.now() - start > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('kill -9 during apply: nothing half-written is visible, and a re-run finishes and keeps staged blobs', async () => {
  const home = join(s.dir, 'killed');
  const started = Date.now();
  await bpOk(join(s.dir, 'timing'), ['apply', app1]);
  const duration = Date.now() - started;
  for (let i = 0; i < 8; i++) {
    const a = spawnApply(home, [app1]);
    await new Promise((r) => setTimeout(r, Math.random() * duration));
    a.child.kill('SIGKILL');
    await a.exit;
    await consistent(home, app1);
  }
  // a deterministic interruption: the bundle's first half arrives, then the process dies
  const fifo = join(s.dir, 'half.bpk');
  await run('mkfifo', [fifo]);
  const fresh = join(s.dir, 'killed-fresh');
  const a = spawnApply(fresh, [fifo]);
  const bytes = await readFile(app1);
  const feeding = pipeline(createReadStream(app1, { end: Math.floor(bytes.length / 2) }), createWriteStream(fifo)).catch(() => {});
  await waitFor(async () => (await readdir(join(fresh, 'staging')).catch(() => [])).length > 0 && (await readdir(join(fresh, 'staging', (await readdir(join(fresh, 'staging')))[0]))).some((f) => /^[0-9a-f]{64}$/.test(f)));
  a.child.kill('SIGKILL');
  await a.exit;
  await feeding;
  const resumed = JSON.parse((await bpOk(fresh, ['apply', app1, '--json'])).stdout);
  assert.ok(resumed.blobs.resumed >= 1, JSON.stringify(resumed.blobs));
  await bpOk(home, ['apply', app1]);
  for (const h of [home, fresh]) {
    await clean(h);
    assert.deepEqual(await readdir(h).then((x) => x.filter((f) => f === 'staging')), []);
  }
  const archive = join(s.dir, 'after-kill.tar');
  const r = JSON.parse((await bpOk(home, ['materialize', 'app:1', `docker-archive:${archive}`, '--json'])).stdout);
  assert.equal(r.configDigest, (await readImage(s.oci, '1')).manifest.config.digest);
});

test('a full disk: a one-line ENOSPACE error, the store unchanged, no staging left', async (t) => {
  const mnt = join(s.dir, 'small-disk');
  await mkdir(mnt);
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', mnt]);
  } catch {
    t.skip('cannot mount a tmpfs here');
    return;
  }
  try {
    const home = join(mnt, 'store');
    await copyDir(customerV1, home);
    const fs = await statfs(mnt);
    // leave less room than the changed jar needs
    await writeFile(join(mnt, 'filler'), Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 64 * 1024)));
    await refused(home, [app2], 10, /^blockport: no space left on device while writing /);
    await clean(home);
  } finally {
    await run('umount', [mnt]).catch(() => run('umount', ['-l', mnt]));
  }
});
