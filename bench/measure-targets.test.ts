import type { ReceiverRow } from './measure-receiver.js';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BlockportRun } from './measure-blockport.js';
import { selfTimes } from './measure-profile.js';
import { formatTargets, judge, type Timings, type UpgradeBytes } from './measure-targets.js';

const sized = (bytes: number) => ({ bytes, seconds: 1, cached: true });
const run = (step: string, seconds: number, rssMB: number): BlockportRun => ({ step, subject: 'x', command: step, seconds, peakRssKiB: (rssMB * 1e6) / 1024, runs: [seconds] });

function upgrade(to: string, o: Partial<UpgradeBytes>): UpgradeBytes {
  return {
    name: to, from: 'java-v1', to, fullGzip: sized(3e8), fullZstd: sized(2e8), layerLevel: { bytes: 1e8, layers: 2, of: 5 },
    perFile: { files: 3, rawBytes: 3e5, bytes: 2.5e5 }, bundle: 3e5, bundleDelta: 1e5, patchFrom: sized(5e5), ...o,
  };
}

const tool = (seconds: number) => ({ what: 't', command: 't', seconds, peakRssKiB: 1000, runs: [seconds] });

function timings(materialize: number, blockify: number): Timings {
  const profile = { seconds: 1, sampledMs: 1, top: [], modules: [] };
  return {
    tag: 'java-xl', layerBytes: 1.1e9, blockify: run('blockify', blockify, 100), blockifyVariants: [], bundle: run('bundle', 1, 90),
    bundleDelta: null, apply: run('apply', 1, 90), materialize: run('materialize', materialize, 100), skopeo: tool(6), gnuTar: tool(30),
    cp: tool(0.25), cpSync: tool(1), archiveBytes: 1.1e9, profiles: { blockify: profile, materialize: profile },
  };
}

test('judge: each target passes or fails on its own measured value', () => {
  const ups = [
    upgrade('java-v2', {}),
    upgrade('java-v3', { bundle: 9e7, perFile: { files: 1, rawBytes: 1, bytes: 8e7 }, bundleDelta: 2e7, patchFrom: sized(2.1e7) }),
    upgrade('teams-v1', { bundleDelta: null }),
  ];
  const t = timings(2, 5);
  const verdicts = judge(ups, t, [t.blockify, run('bundle --delta', 10, 406)]).map((x) => x.pass);
  // v2: 333x smaller (pass), delta 0.2x (pass); v3: bundle > per-file (fail), delta 0.95x (pass);
  // teams: 300 kB < 250 kB? no (fail), delta n/a; skopeo 3.0x (pass); 2.0x cp+sync (fail); 220 MB/s (pass);
  // no receiver rows (n/a); 406 MB (fail)
  assert.deepEqual(verdicts, [true, true, false, true, false, null, true, false, true, null, false]);
  const lines = formatTargets(judge(ups, t, [t.blockify]));
  // The timing targets name the image they ran on and its size.
  assert.match(lines[6], /materialize java-xl \(1100\.0 MB\) to docker-archive/);
  assert.match(lines[8], /220 MB\/s \(java-xl, 1100\.0 MB in 5\.00 s\)/);
  assert.match(lines[5], /^N\/A .*n\/a \(bundle --delta not available\)/);
  assert.match(lines[10], /^PASS .*worst 100 MB/);
});

test('judge: materialize must be within 1.3x of cp + sync on every scenario', () => {
  const t = timings(2, 5);
  const row = (tag: string, mat: number, cp: number) => ({ tag, materialize: { seconds: mat, peakRssKiB: 1, runs: [mat] }, cpSync: { seconds: cp, peakRssKiB: 1, runs: [cp] } }) as unknown as ReceiverRow;
  const target = (rows: ReceiverRow[]) => formatTargets(judge([], t, [t.blockify], rows)).find((l) => l.includes('every scenario (after'))!;
  assert.match(target([row('node-v2', 1.2, 1), row('java-v3', 2.6, 2)]), /^PASS .*node-v2 1\.20x, java-v3 1\.30x/);
  assert.match(target([row('node-v2', 1.2, 1), row('java-v3', 2.8, 2)]), /^FAIL .*java-v3 1\.40x/);
});

test('selfTimes sums self time per function and sorts heaviest first', () => {
  const frame = (functionName: string, url: string, lineNumber: number) => ({ functionName, url, lineNumber });
  const p = {
    nodes: [{ id: 1, callFrame: frame('(idle)', '', -1) }, { id: 2, callFrame: frame('update', 'node:internal/crypto/hash', 131) }],
    samples: [1, 2, 2, 2],
    timeDeltas: [1000, 2000, 2000, 2000],
  };
  assert.deepEqual(selfTimes(p), [['update hash:132', 6], ['(idle)', 1]]);
  assert.deepEqual(selfTimes(p, true), [['hash', 6], ['(idle)', 1]]);
});
