import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRange } from './byte-range.js';
import { RegistryError } from './registry-error.js';

const refused = (h: string, size: number) => assert.throws(() => parseRange(h, size), (e: unknown) => e instanceof RegistryError && e.status === 416 && e.headers['Content-Range'] === `bytes */${size}`);

test('one range: a-b, a-, -n, the end clipped to the blob', () => {
  assert.equal(parseRange(undefined, 10), undefined);
  assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
  assert.deepEqual(parseRange('bytes=2-5', 10), { start: 2, end: 5 });
  assert.deepEqual(parseRange('bytes=4-', 10), { start: 4, end: 9 });
  assert.deepEqual(parseRange('bytes=4-99', 10), { start: 4, end: 9 });
  assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=-30', 10), { start: 0, end: 9 });
});

test('unsatisfiable, malformed, reversed and multiple ranges are 416', () => {
  refused('bytes=10-', 10);
  refused('bytes=10-12', 10);
  refused('bytes=5-2', 10);
  refused('bytes=-0', 10);
  refused('bytes=-', 10);
  refused('bytes=0-1,3-4', 10);
  refused('items=0-1', 10);
  refused('bytes=abc', 10);
  refused('bytes=0-', 0);
});
