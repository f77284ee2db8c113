// Crash consistency, many runs (not part of CI: about 25 minutes on 2 cores): kills apply,
// materialize and blockify with SIGKILL at random moments of their run, checks fsck finds only
// leftovers the re-run takes care of, that the re-run succeeds with the right digests, and
// prints how many runs were killed mid-way and what they left.
//
// Measured (seed 4242, 50 runs each, 2 shared cores, beside the test suite): apply 31 killed
// mid-way, 16 left a staging folder the re-run resumed; materialize 47 killed, the temp file
// beside the output always removed by the re-run, same bytes; blockify 46 killed, 37 left temp
// files in blobs/ that the re-run's first write removed. Every re-run right, fsck clean after it.
//
//   node dist/bench/crash.js [--runs 50] [--seed N] [--only apply,materialize,blockify]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bpOk, vendorScenario } from '../test/bundle-helpers.js';
import { applyCase, blockifyCase, materializeCase, storeWithApp1 } from '../test/crash-cases.js';
import { crashRuns, type CrashCase } from '../test/crash-harness.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '50' }, seed: { type: 'string' }, only: { type: 'string' } } });
const runs = Number(values.runs);
const seed = values.seed === undefined ? Date.now() & 0xffff : Number(values.seed);
const only = values.only?.split(',');

const s = await vendorScenario();
try {
  const bundle = join(s.dir, 'app-1.bpk');
  await bpOk(s.vendor, ['bundle', '--to', 'app:1', '-o', bundle]);
  const cases: CrashCase[] = [applyCase(s, bundle, s.dir), materializeCase(await storeWithApp1(s, bundle, s.dir), s.dir), blockifyCase(s, s.dir)];
  process.stdout.write(`seed ${seed}, ${runs} runs each\n`);
  for (const c of cases.filter((x) => !only || only.includes(x.name))) {
    const started = Date.now();
    const r = await crashRuns(c, runs, seed);
    const left = Object.entries(r.leftovers).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    process.stdout.write(`${r.name}: ${r.runs} runs, ${r.killed} killed mid-way (usual run ${r.durationMs} ms), leftovers after the kill: ${left}; all re-runs right (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  }
} finally {
  await s.cleanup();
}
