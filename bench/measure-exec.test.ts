import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bestInTurns } from './measure-exec.js';

test('bestInTurns: the commands take turns, each reset first; best time, every run and the largest RSS per command', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-turns-'));
  try {
    const log = join(dir, 'log');
    const say = (word: string, seconds: number) => ({ cmd: 'bash', args: ['-c', `sleep ${seconds}; echo ${word} >> ${log}`] });
    const resets: string[] = [];
    const [a, b] = await bestInTurns(2, [
      { c: say('a', 0.05), reset: async () => void resets.push('a') },
      { c: say('b', 0.3), reset: async () => void resets.push('b') },
    ]);
    assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), ['a', 'b', 'a', 'b']);
    assert.deepEqual(resets, ['a', 'b', 'a', 'b']);
    assert.equal(a.runs.length, 2);
    assert.equal(b.runs.length, 2);
    assert.equal(a.seconds, Math.min(...a.runs));
    assert.equal(b.seconds, Math.min(...b.runs));
    assert.ok(b.seconds >= 0.3 && a.seconds < b.seconds, `a ${a.seconds} s, b ${b.seconds} s`);
    assert.ok(a.peakRssKiB > 0 && b.peakRssKiB > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
