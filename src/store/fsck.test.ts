import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { sha256 } from '../digest/digest.js';
import { OciLayout } from '../oci/layout.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { fsck, quarantineDir } from './fsck.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-fsck-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** A store with one tagged single-layer image. */
async function store(name: string): Promise<{ layout: OciLayout; layer: Descriptor }> {
  const layout = new OciLayout(join(dir, name));
  await layout.init();
  const put = async (mediaType: string, bytes: Buffer): Promise<Descriptor> => {
    await layout.blobs.put(Readable.from([bytes]));
    return { mediaType, digest: sha256(bytes), size: bytes.length };
  };
  const layer = await put(MediaType.ociLayer, Buffer.alloc(1024));
  const config = await put(MediaType.ociConfig, Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
  const manifest = await put(MediaType.ociManifest, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [layer] })));
  await layout.tag(manifest, 'app:1');
  return { layout, layer };
}

test('a clean store passes', async () => {
  const { layout } = await store('clean');
  const r = await fsck(layout);
  assert.deepEqual(r.problems, []);
  assert.equal(r.ok, true);
  assert.equal(r.blobs, 3);
  assert.equal(r.images, 1);
  assert.deepEqual(await readdir(layout.root).then((x) => x.filter((f) => f.startsWith('.'))), [], 'the lock is released');
});

test('corrupt and missing blobs, dead temp files and staging folders are found; --repair removes leftovers and quarantines corrupt blobs', async () => {
  const { layout, layer } = await store('broken');
  const bytes = await readFile(layout.blobs.path(layer.digest));
  bytes[3] ^= 1;
  await writeFile(layout.blobs.path(layer.digest), bytes);
  await writeFile(join(layout.blobs.dir, '.incoming.tmp-999999999-0badf00d'), 'half');
  await writeFile(join(layout.blobs.dir, 'README'), 'stray');
  await mkdir(join(layout.root, 'staging', 'ab'), { recursive: true });
  await writeFile(join(layout.root, `.index.json.tmp-${process.pid}-0badf00d`), 'being written');
  const r = await fsck(layout);
  assert.deepEqual(r.problems.map((p) => p.kind).sort(), ['corrupt', 'staging', 'stray', 'temp']);
  assert.match(r.problems.find((p) => p.kind === 'corrupt')!.message, /digest mismatch/);
  assert.deepEqual(r.inUse, [join(layout.root, `.index.json.tmp-${process.pid}-0badf00d`)], 'a live writer is not a problem');
  assert.equal(r.ok, false);
  const repaired = await fsck(layout, { repair: true });
  assert.deepEqual(repaired.problems.filter((p) => p.repaired).map((p) => p.kind).sort(), ['corrupt', 'staging', 'temp']);
  // the corrupt blob is kept, out of blobs/: the image now lacks it, and says so
  const kept = join(quarantineDir(layout.root), layer.digest.slice(7));
  assert.deepEqual(repaired.quarantined, [kept]);
  assert.deepEqual(await readFile(kept), bytes);
  assert.equal(await layout.blobs.size(layer.digest), undefined);
  assert.ok(repaired.problems.some((p) => p.kind === 'missing' && !p.repaired && /app:1: 1 blob\(s\) missing/.test(p.message)));
  assert.equal(repaired.ok, false, 'the image lacks the quarantined blob');
  const missing = await fsck(layout);
  assert.ok(missing.problems.some((p) => p.kind === 'missing' && /app:1: 1 blob\(s\) missing/.test(p.message)));
});

test('a folder that was never a store is not found; a store without index.json or blobs is clean', async () => {
  await assert.rejects(fsck(new OciLayout(join(dir, 'nothing'))), /no store here/);
  await mkdir(join(dir, 'fresh'));
  assert.equal((await fsck(new OciLayout(join(dir, 'fresh')))).ok, true);
});
