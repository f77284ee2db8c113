import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { test } from 'node:test';
import { FsBlobStore } from '../cas/blob-store.js';
import type { Digest } from '../digest/digest.js';
import type { LazyLayer } from '../oci/standard-image.js';
import { LayerCache } from './layer-cache.js';
import type { SplicedLayer } from './served-image.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

/** A layer whose bytes come in 64 KiB pieces, each after `gate()` resolves; counts how often it is produced. */
function fakeLayer(bytes: Buffer, opts: { digest?: Digest; gate?: () => Promise<void> } = {}): SplicedLayer & { opened: number; recorded: number } {
  const out = {
    kind: 'spliced' as const,
    digest: opts.digest ?? sha(bytes),
    size: bytes.length,
    opened: 0,
    recorded: 0,
    layer: {
      async *open() {
        out.opened++;
        for (let i = 0; i < bytes.length; i += 65536) {
          await opts.gate?.();
          yield bytes.subarray(i, i + 65536);
        }
      },
    } as unknown as LazyLayer,
    async record() {
      out.recorded++;
    },
  };
  return out;
}

async function read(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function withCache(fn: (cache: LayerCache, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'blockport-layer-cache-'));
  try {
    await fn(new LayerCache(join(dir, 'cache'), new FsBlobStore(join(dir, 'store'))), dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));

test('readers that arrive during the splice follow it: one splice, every range right, then the cache file', async () => {
  await withCache(async (cache, dir) => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let pieces = 0;
    const layer = fakeLayer(bytes, { gate: async () => void (++pieces > 2 && (await held)) });
    const a = await cache.open(layer, 0, bytes.length - 1);
    const b = await cache.open(layer, 1000, 200_000);
    const c = await cache.open(layer, bytes.length - 10, bytes.length - 1);
    assert.deepEqual([a.origin, b.origin, c.origin], ['splice', 'splice', 'splice']);
    const all = Promise.all([read(a.stream), read(b.stream), read(c.stream)]);
    await new Promise((r) => setTimeout(r, 50));
    release();
    const [ra, rb, rc] = await all;
    assert.deepEqual(ra, bytes);
    assert.deepEqual(rb, bytes.subarray(1000, 200_001));
    assert.deepEqual(rc, bytes.subarray(bytes.length - 10));
    assert.equal(layer.opened, 1, 'spliced once');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(layer.recorded, 1);
    const later = await cache.open(layer, 5, 9);
    assert.equal(later.origin, 'cache');
    assert.deepEqual(await read(later.stream), bytes.subarray(5, 10));
    assert.deepEqual(await readdir(join(dir, 'cache', 'sha256')), [layer.digest.slice(7)]);
    assert.deepEqual(cache.spliced, { layers: 1, bytes: bytes.length });
  });
});

test('a layer that does not match its diff_id: readers fail before the last byte, nothing is cached, the next request splices again', async () => {
  await withCache(async (cache, dir) => {
    const layer = fakeLayer(bytes, { digest: sha(Buffer.from('something else')) });
    const got: Buffer[] = [];
    const { stream } = await cache.open(layer, 0, bytes.length - 1);
    await assert.rejects(
      (async () => {
        for await (const c of stream) got.push(c as Buffer);
      })(),
      /does not splice into its diff_id/,
    );
    assert.ok(Buffer.concat(got).length < bytes.length, 'the last byte is held back');
    assert.deepEqual(await readdir(join(dir, 'cache', 'sha256')), []);
    await assert.rejects(read((await cache.open(layer, 100, bytes.length - 1)).stream), /does not splice/);
    assert.equal(layer.opened, 2);
    assert.equal(layer.recorded, 0);
  });
});

test('close() stops a splice in progress and removes its temp file', async () => {
  await withCache(async (cache, dir) => {
    let pieces = 0;
    const layer = fakeLayer(bytes, { gate: () => (++pieces > 1 ? new Promise((r) => setTimeout(r, 200)) : Promise.resolve()) });
    const { stream } = await cache.open(layer, 0, bytes.length - 1);
    const reading = read(stream);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await readdir(join(dir, 'cache', 'sha256'))).filter((n) => n.includes('.tmp-')).length, 1, 'the temp file while splicing');
    await cache.close();
    await assert.rejects(reading, /serving stopped/);
    assert.deepEqual(await readdir(join(dir, 'cache', 'sha256')), []);
    assert.deepEqual(await readFile(join(dir, 'cache', 'sha256', layer.digest.slice(7))).catch(() => 'absent'), 'absent');
  });
});
