import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sha256, type Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/types.js';
import { plan, type WantImage } from './plan.js';

const d = (name: string, size: number, mediaType = 'application/octet-stream'): Descriptor => ({ mediaType, digest: sha256(name), size });

/** An image whose blobs are top, config, one layer per entry and some blocks. */
function image(name: string, parts: { layers: [string, number, string][]; blocks: [string, number][] }): WantImage {
  const top = d(`${name}-index`, 500);
  const config = d(`${name}-config`, 300);
  const layers = parts.layers.map(([id, size]) => d(`layer-${id}`, size));
  const blocks = parts.blocks.map(([id, size]) => d(`block-${id}`, size));
  return {
    name,
    top,
    blobs: [top, config, ...layers, ...blocks],
    layers: parts.layers.map(([id, , diff], i) => ({ diffId: sha256(diff), blob: layers[i].digest, size: parts.layers[i][1] * 10 })),
    configSize: config.size,
  };
}

const v1 = image('app:1', { layers: [['base', 1000, 'base'], ['deps1', 200, 'deps1']], blocks: [['guava', 5000], ['jackson', 7000]] });
const v2 = image('app:2', { layers: [['base', 1000, 'base'], ['deps2', 210, 'deps2']], blocks: [['guava', 5000], ['jackson-2', 7100]] });
const worker = image('worker:7', { layers: [['base', 1000, 'base'], ['wdeps', 150, 'wdeps']], blocks: [['guava', 5000], ['jackson-2', 7100]] });

test('send is want minus have; prerequisites are want ∩ have', () => {
  const have = { blobs: new Set(v1.blobs.map((b) => b.digest)), diffIds: new Set<Digest>() };
  const p = plan([v2], have);
  const sent = new Set(p.send.map((b) => b.digest));
  assert.deepEqual(sent, new Set([sha256('app:2-index'), sha256('app:2-config'), sha256('layer-deps2'), sha256('block-jackson-2')]));
  assert.deepEqual(new Set(p.prerequisites.map((x) => x.digest)), new Set([sha256('layer-base'), sha256('block-guava')]));
  assert.equal(p.sizes.send, 500 + 300 + 210 + 7100);
  assert.equal(p.sizes.prerequisites, 1000 + 5000);
  assert.deepEqual(p.targets, [{ name: 'app:2', descriptor: v2.top }]);
});

test('the layer-level update counts standard layers whose diff_id the receiver lacks', () => {
  const have = { blobs: new Set<Digest>(), diffIds: new Set([sha256('base'), sha256('deps1')]) };
  const p = plan([v2], have);
  assert.deepEqual(p.perTarget[0].layerLevel, { layers: 1, bytes: 2100 });
  assert.equal(p.perTarget[0].imageBytes, 10000 + 2100 + 300);
  // a layer blob the receiver holds counts as held even when its diff_id was not listed
  const byBlob = plan([v2], { blobs: new Set([sha256('layer-base')]), diffIds: new Set<Digest>() });
  assert.equal(byBlob.perTarget[0].layerLevel.layers, 1);
});

test('blobs shared by several targets travel once', () => {
  const have = { blobs: new Set(v1.blobs.map((b) => b.digest)), diffIds: new Set<Digest>() };
  const p = plan([v2, worker], have);
  const digests = p.send.map((b) => b.digest);
  assert.equal(digests.length, new Set(digests).size);
  assert.equal(digests.filter((x) => x === sha256('block-jackson-2')).length, 1);
  assert.equal(p.sizes.send, p.send.reduce((n, b) => n + b.size, 0));
  // each target's own view still counts the shared block
  assert.ok(p.perTarget.every((t) => t.send.bytes >= 7100));
  assert.equal(p.sizes.layerLevel, 2100 + 1500, "base is held through its blob");
});

test('with nothing held, everything is sent and nothing is a prerequisite', () => {
  const p = plan([v1], { blobs: new Set(), diffIds: new Set() });
  assert.equal(p.send.length, v1.blobs.length);
  assert.equal(p.prerequisites.length, 0);
  assert.equal(p.sizes.full, p.sizes.send);
  assert.equal(p.send[0].digest, v1.top.digest, 'walk order kept: the top first');
});

test('applying the same have twice gives the same plan (pure)', () => {
  const have = { blobs: new Set(v1.blobs.map((b) => b.digest)), diffIds: new Set<Digest>() };
  assert.deepEqual(plan([v2, worker], have), plan([v2, worker], have));
});
