import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Hasher, digestHex, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import type { ImageReader } from './image.js';
import { OciLayout, type LayoutImageReader } from './layout.js';
import { OciArchiveWriter, openOciArchive } from './oci-archive.js';
import { indexTarFile, requireFile } from './tar-index.js';

const run = promisify(execFile);

let tmp: string;
let layoutImage: LayoutImageReader;
/** skopeo's oci-archive of the umoci-built image, tagged t. */
let skopeoArchive: string;

/** Builds an image with umoci from a GNU tar layer, and its oci-archive with skopeo. */
before(async () => {
  tmp = await fsp.mkdtemp(join(tmpdir(), 'blockport-oci-archive-'));
  const root = join(tmp, 'root');
  await fsp.mkdir(join(root, 'app'), { recursive: true });
  await fsp.writeFile(join(root, 'app', 'a.txt'), 'hello\n');
  await fsp.writeFile(join(root, 'app', 'big.bin'), randomBytes(300_000));
  await run('tar', ['-C', root, '-cf', join(tmp, 'layer.tar'), '.']);
  const layout = join(tmp, 'layout');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:t`]);
  await run('umoci', ['raw', 'add-layer', '--image', `${layout}:t`, join(tmp, 'layer.tar')]);
  layoutImage = await new OciLayout(layout).openImage('t', `oci:${layout}:t`);
  skopeoArchive = join(tmp, 'skopeo.tar');
  await run('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${layout}:t`, `oci-archive:${skopeoArchive}:t`]);
});

after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function drain(stream: Readable): Promise<{ digest: Digest; size: number }> {
  const h = new Hasher();
  for await (const chunk of stream) h.update(chunk);
  return { digest: h.digest(), size: h.size };
}

function isCode(code: string) {
  return (err: unknown) => err instanceof BlockportError && err.code === code;
}

async function assertSameImage(r: ImageReader): Promise<void> {
  assert.deepEqual(r.manifestBytes, layoutImage.manifestBytes);
  assert.deepEqual(r.configBytes, layoutImage.configBytes);
  assert.deepEqual(r.config.rootfs.diff_ids, layoutImage.config.rootfs.diff_ids);
  for (const layer of r.manifest.layers) {
    assert.deepEqual(await drain(await r.openBlob(layer)), { digest: layer.digest, size: layer.size });
  }
}

describe('openOciArchive', () => {
  it('reads a skopeo oci-archive as the image it was made from', async () => {
    const r = await openOciArchive(skopeoArchive, 't', 'test');
    await assertSameImage(r);
    // its blobs are archive members: located in the archive file, never linkable blob files
    const spot = await r.locate(r.manifest.layers[0]);
    assert.equal(spot?.path, skopeoArchive);
    assert.equal(spot?.blobFile, false);
    await assertSameImage(await openOciArchive(skopeoArchive, undefined, 'test'));
    await assert.rejects(openOciArchive(skopeoArchive, 'nope', 'test'), isCode('ENOTFOUND'));
    await assert.rejects(openOciArchive(join(tmp, 'layer.tar'), undefined, 'test'), isCode('ENOTFOUND'));
  });

  it('fails the blob stream with EDIGEST when a layer byte is flipped', async () => {
    const bad = join(tmp, 'flipped.tar');
    await fsp.copyFile(skopeoArchive, bad);
    const r = await openOciArchive(bad, 't', 'test');
    const layer = r.manifest.layers[0];
    const member = requireFile(await indexTarFile(bad), `blobs/sha256/${digestHex(layer.digest)}`);
    const fh = await fsp.open(bad, 'r+');
    const one = Buffer.alloc(1);
    await fh.read(one, 0, 1, member.offset + 5000);
    await fh.write(Buffer.from([one[0] ^ 0x01]), 0, 1, member.offset + 5000);
    await fh.close();
    await assert.rejects(drain(await r.openBlob(layer)), isCode('EDIGEST'));
  });

  it('refuses a truncated archive with ECORRUPT', async () => {
    const index = await indexTarFile(skopeoArchive);
    const layer = requireFile(index, `blobs/sha256/${digestHex(layoutImage.manifest.layers[0].digest)}`);
    const bad = join(tmp, 'truncated.tar');
    await fsp.copyFile(skopeoArchive, bad);
    await fsp.truncate(bad, layer.offset + 1234);
    await assert.rejects(openOciArchive(bad, 't', 'test'), isCode('ECORRUPT'));
  });
});

/** Writes the layout image into an oci-archive under `tag` through OciArchiveWriter. */
async function writeArchive(file: string, tag: string): Promise<void> {
  const w = new OciArchiveWriter(file, tag, `oci-archive:${file}:${tag}`);
  try {
    for (const d of [layoutImage.manifest.config, ...layoutImage.manifest.layers]) await w.copyBlob(layoutImage, d);
    assert.equal(await w.hasBlob(layoutImage.manifest.layers[0]), true);
    const m = layoutImage.manifestDescriptor;
    await w.putBlob(Readable.from([layoutImage.manifestBytes]), { digest: m.digest, size: m.size });
    await w.commit(m);
  } finally {
    await w.abort();
  }
}

describe('OciArchiveWriter', () => {
  it('writes an archive skopeo reads, and nothing else beside it', async () => {
    const dir = await fsp.mkdtemp(join(tmp, 'w-'));
    const file = join(dir, 'image.tar');
    await writeArchive(file, 'v1');
    assert.deepEqual(await fsp.readdir(dir), ['image.tar']);
    const { stdout } = await run('skopeo', ['inspect', `oci-archive:${file}:v1`]);
    const info = JSON.parse(stdout);
    assert.equal(info.Digest, layoutImage.manifestDescriptor.digest);
    assert.deepEqual(info.Layers, layoutImage.manifest.layers.map((l) => l.digest));
    await assertSameImage(await openOciArchive(file, 'v1', 'test'));
    const { stdout: listing } = await run('tar', ['-tf', file]);
    const blobs = [layoutImage.manifest.config, ...layoutImage.manifest.layers, layoutImage.manifestDescriptor].map((d) => `blobs/sha256/${digestHex(d.digest)}`);
    assert.deepEqual(listing.trim().split('\n'), ['oci-layout', 'index.json', 'blobs/', 'blobs/sha256/', ...blobs.sort()]);
  });

  it('is deterministic, and replaces an existing archive whole', async () => {
    const dir = await fsp.mkdtemp(join(tmp, 'w-'));
    await writeArchive(join(dir, 'a.tar'), 'v1');
    await writeArchive(join(dir, 'b.tar'), 'v1');
    assert.deepEqual(await fsp.readFile(join(dir, 'a.tar')), await fsp.readFile(join(dir, 'b.tar')));
    await writeArchive(join(dir, 'a.tar'), 'v2');
    await openOciArchive(join(dir, 'a.tar'), 'v2', 'test');
    await assert.rejects(openOciArchive(join(dir, 'a.tar'), 'v1', 'test'), isCode('ENOTFOUND'));
  });

  it('leaves nothing behind on abort or on a blob that does not match', async () => {
    const dir = await fsp.mkdtemp(join(tmp, 'w-'));
    const file = join(dir, 'image.tar');
    const w = new OciArchiveWriter(file, 't', 'test');
    const m = layoutImage.manifestDescriptor;
    await assert.rejects(w.putBlob(Readable.from([Buffer.from('not the manifest')]), { digest: m.digest, size: m.size }), isCode('EDIGEST'));
    await w.abort();
    assert.deepEqual(await fsp.readdir(dir), []);
  });
});
