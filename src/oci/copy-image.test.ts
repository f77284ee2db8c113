import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { sha256 } from '../digest/digest.js';
import { writeBlockFormImage } from '../blocks/packaging.js';
import { copyImage, forEachBounded } from './copy-image.js';
import { LayoutImageWriter, OciLayout } from './layout.js';
import { MediaType } from './media-types.js';

describe('forEachBounded', () => {
  it('runs at most `limit` at once and throws the first error only after the running ones settle', async () => {
    let running = 0;
    let peak = 0;
    const settled: number[] = [];
    const work = async (i: number) => {
      running++;
      peak = Math.max(peak, running);
      await sleep(i === 2 ? 5 : 20);
      running--;
      settled.push(i);
      if (i === 2) throw new Error('two');
    };
    await assert.rejects(forEachBounded([0, 1, 2, 3, 4, 5, 6, 7], 3, work), /two/);
    assert.equal(peak, 3);
    assert.equal(running, 0, 'nothing still running when the error arrives');
    assert.ok(!settled.includes(7), 'no new item started after the failure');
  });
});

describe('copyImage', () => {
  it('copies a block-form image between layouts with the same top digest, then skips what is there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blockport-copy-'));
    try {
      const a = new OciLayout(join(dir, 'a'));
      await a.init();
      const w = new LayoutImageWriter('a', a, '1');
      const put = async (bytes: Buffer, mediaType: string) => {
        await w.putBlob(Readable.from([bytes]), { digest: sha256(bytes), size: bytes.length });
        return { mediaType, digest: sha256(bytes), size: bytes.length };
      };
      const block = await put(Buffer.from('jar bytes'), MediaType.blockFile);
      const layer = await put(Buffer.alloc(1024), MediaType.blockLayer);
      const configJson = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256('standard layer')] } };
      const config = await put(Buffer.from(JSON.stringify(configJson)), MediaType.ociConfig);
      const { top } = await writeBlockFormImage(w, { config, configJson, layers: [layer], blocks: [block] });
      await w.commit(top);

      const b = new OciLayout(join(dir, 'b'));
      await b.init();
      const first = await copyImage(await a.openImage('1', 'a:1'), new LayoutImageWriter('b', b, '1'));
      assert.equal(first.top.digest, top.digest);
      // top, block-form manifest, config, layer, block
      assert.deepEqual([first.stats.total.blobs, first.stats.moved.blobs, first.stats.present.blobs], [5, 5, 0]);
      const index = JSON.parse(await readFile(join(dir, 'b', 'index.json'), 'utf8'));
      assert.equal(index.manifests[0].digest, top.digest);
      const again = await copyImage(await a.openImage('1', 'a:1'), new LayoutImageWriter('b', b, '2'));
      assert.deepEqual([again.stats.moved.blobs, again.stats.present.blobs], [1, 4], 'only the top manifest is written again');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
