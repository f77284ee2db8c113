/**
 * kill -9 at random moments of apply, materialize and blockify (a few runs each here; 50 each in
 * bench/crash.ts): fsck then finds only leftovers the re-run takes care of, and the re-run
 * succeeds with the right digests.
 */
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { bpOk, vendorScenario, type Scenario } from './bundle-helpers.js';
import { applyCase, blockifyCase, materializeCase, storeWithApp1 } from './crash-cases.js';
import { crashRuns } from './crash-harness.js';

const RUNS = Number(process.env.BLOCKPORT_CRASH_RUNS ?? 3);
let s: Scenario;
let bundle: string;

before(async () => {
  s = await vendorScenario();
  bundle = join(s.dir, 'app-1.bpk');
  await bpOk(s.vendor, ['bundle', '--to', 'app:1', '-o', bundle]);
});
after(() => s?.cleanup());

test(`apply killed at random points (${RUNS} runs): the re-run resumes and tags the right image`, async () => {
  await crashRuns(applyCase(s, bundle, s.dir), RUNS);
});

test(`materialize killed at random points (${RUNS} runs): the re-run writes the same bytes, no temp file stays`, async () => {
  await crashRuns(materializeCase(await storeWithApp1(s, bundle, s.dir), s.dir), RUNS);
});

test(`blockify killed at random points (${RUNS} runs): the re-run makes the same image`, async () => {
  await crashRuns(blockifyCase(s, s.dir), RUNS);
});
