/**
 * Two blockport processes at once on one store or one output: two applies (one waits its turn
 * with exit 7, or both succeed), gc while an apply runs (nothing the apply needs goes), two
 * materializes to one file (one wins, the file is whole, no temp file stays).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, readdir, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { CLI, NODE_FLAGS, type CliResult } from './cli.js';
import { run } from './fixtures/images.js';
import { bpOk, copyDir, vendorScenario, type Scenario } from './bundle-helpers.js';

let s: Scenario;
let customerV1: string;
const at = (n: string) => join(s.dir, n);

before(async () => {
  s = await vendorScenario();
  await bpOk(s.vendor, ['bundle', '--to', 'app:1', '-o', at('app-1.bpk')]);
  await bpOk(s.vendor, ['bundle', '--to', 'app:2', '--since', 'app:1', '-o', at('app-2.bpk')]);
  await bpOk(s.vendor, ['bundle', '--to', 'worker:1', '--since', 'app:1', '-o', at('worker-1.bpk')]);
  customerV1 = at('customer-v1');
  await bpOk(customerV1, ['apply', at('app-1.bpk')]);
});
after(() => s?.cleanup());

/** Starts the CLI now; resolves with its result when it ends. */
function start(home: string, args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, CLI, ...args], { env: { ...process.env, BLOCKPORT_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const names = async (home: string) => JSON.parse((await bpOk(home, ['images', '--json'])).stdout).map((i: { name: string }) => i.name).sort();

async function clean(home: string): Promise<void> {
  const r = await bpOk(home, ['fsck', '--json']);
  assert.equal(JSON.parse(r.stdout).ok, true, r.stdout);
}

test('two applies at once: each succeeds or gets exit 7 at once; then both bundles apply and the store is clean', async () => {
  for (let i = 0; i < 3; i++) {
    const home = at(`two-${i}`);
    await copyDir(customerV1, home);
    const [a, b] = await Promise.all([start(home, ['apply', at('app-2.bpk')]), start(home, ['apply', at('worker-1.bpk')])]);
    for (const r of [a, b]) {
      assert.ok(r.code === 0 || r.code === 7, `exit ${r.code}: ${r.stderr}`);
      if (r.code === 7) assert.match(r.stderr, /^blockport: the store .* is in use by process \d+/);
    }
    if (a.code === 7) await bpOk(home, ['apply', at('app-2.bpk')]);
    if (b.code === 7) await bpOk(home, ['apply', at('worker-1.bpk')]);
    assert.deepEqual(await names(home), ['app:1', 'app:2', 'worker:1']);
    await clean(home);
  }
});

test('gc while an apply runs: gc waits its turn (exit 7) and deletes nothing the apply brings', async () => {
  const home = at('gc-apply');
  await copyDir(customerV1, home);
  const fifo = at('slow.bpk');
  await run('mkfifo', [fifo]);
  // the apply holds the lock while its bundle arrives through the FIFO
  const applying = start(home, ['apply', fifo]);
  for (let t = Date.now(); !(await readdir(home)).includes('.lock'); ) {
    assert.ok(Date.now() - t < 10_000, 'apply took the lock');
    await new Promise((r) => setTimeout(r, 5));
  }
  const gc = await start(home, ['gc', '--grace', '0']);
  assert.equal(gc.code, 7, gc.stderr);
  await pipeline(createReadStream(at('app-2.bpk')), createWriteStream(fifo));
  assert.equal((await applying).code, 0);
  // and a gc racing a fresh apply, started together: whichever goes first, the image is whole
  await bpOk(home, ['rmi', 'app:2']);
  const [again, gc2] = await Promise.all([start(home, ['apply', at('app-2.bpk')]), start(home, ['gc', '--grace', '0'])]);
  assert.ok(gc2.code === 0 || gc2.code === 7, gc2.stderr);
  if (again.code === 7) await bpOk(home, ['apply', at('app-2.bpk')]);
  else assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(await names(home), ['app:1', 'app:2']);
  await clean(home);
  await bpOk(home, ['materialize', 'app:2', `docker-archive:${at('after-gc.tar')}`, '--verify']);
});

test('two materializes to one output: one wins, the file is whole, no temp file stays', async () => {
  const home = at('two-mat');
  await copyDir(customerV1, home);
  await bpOk(home, ['materialize', 'app:1', `docker-archive:${at('reference.tar')}:app:1`]);
  const reference = createHash('sha256').update(await readFile(at('reference.tar'))).digest('hex');
  for (const force of [[], ['--force']]) {
    const dir = at(`out${force.length}`);
    await mkdir(dir);
    const out = join(dir, 'app.tar');
    const runs = await Promise.all([0, 1].map(() => start(home, ['materialize', 'app:1', `docker-archive:${out}:app:1`, ...force])));
    assert.ok(runs.some((r) => r.code === 0), runs.map((r) => r.stderr).join(''));
    // without --force the later one may find the file there and refuse it: exit 2, file untouched
    for (const r of runs) assert.ok(r.code === 0 || (r.code === 2 && force.length === 0 && /already exists/.test(r.stderr)), `exit ${r.code}: ${r.stderr}`);
    assert.equal(createHash('sha256').update(await readFile(out)).digest('hex'), reference);
    assert.deepEqual(await readdir(dir), ['app.tar']);
  }
  await clean(home);
});
