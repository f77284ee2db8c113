import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Piece } from '../cas/copy-plan.js';
import { sha256 } from '../digest/digest.js';
import type { FileSpot, LayerRecords } from '../oci/image.js';
import { Annotation, MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import type { BlockAccess } from './block-access.js';
import { keptPlan } from './splice-plan.js';

async function* from(pieces: Piece[]): AsyncGenerator<Piece> {
  yield* pieces;
}

const layer: Descriptor = { mediaType: MediaType.blockLayer, digest: sha256('layer'), size: 2048, annotations: { [Annotation.layerSize]: '5' } };
// a layer file that is not there: splicing it fails, so only a kept plan can give bytes
const spot: FileSpot = { path: '/nonexistent/layer', offset: 0, size: 2048, blobFile: true };
const access = {} as BlockAccess;

/** Records that keep `kept` for `layer` and log what they were asked. */
function records(kept: Piece[] | undefined): LayerRecords & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    has: async () => true,
    record: async () => {},
    plan: async (d, size) => {
      asked.push(`plan ${d === layer.digest} ${size}`);
      return kept && from(kept);
    },
    keepPlan: (_d, pieces, _sourceOf, recorded) => {
      asked.push(`keep ${recorded}`);
      return pieces;
    },
    dropPending: async () => {},
  };
}

async function all(pieces: AsyncIterable<Piece>): Promise<Piece[]> {
  const out: Piece[] = [];
  for await (const p of pieces) out.push(p);
  return out;
}

test('a recorded layer with a kept plan is copied from it: the layer is not spliced', async () => {
  const kept = [Buffer.from('hello')];
  const r = records(kept);
  assert.deepEqual(await all(keptPlan(r, layer, spot, access, true)), kept);
  assert.deepEqual(r.asked, ['plan true 5']);
});

test('without a kept plan, or unless recorded, the layer is spliced and its plan handed over to keep', async () => {
  for (const [kept, recorded, asked] of [[undefined, true, ['plan true 5', 'keep true']], [[Buffer.from('x')], false, ['keep false']]] as const) {
    const r = records(kept as Piece[] | undefined);
    await assert.rejects(all(keptPlan(r, layer, spot, access, recorded)), /nonexistent/);
    assert.deepEqual(r.asked, asked);
  }
});
