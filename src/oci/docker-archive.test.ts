import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { Hasher, digestHex, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { cleanPath } from '../tar/path.js';
import { openDockerArchive, writeDockerArchive, writeDockerArchiveFile, type DockerArchiveImage } from './docker-archive.js';
import type { ImageReader } from './image.js';
import { OciLayout, type LayoutImageReader } from './layout.js';
import { MediaType } from './media-types.js';
import { indexTarFile, readMember, requireFile } from './tar-index.js';

const run = promisify(execFile);

let tmp: string;
let layoutImage: LayoutImageReader;
/** skopeo's docker-archive of the umoci-built image, named app:1. */
let skopeoArchive: string;

/** Builds an image with umoci from two GNU tar layers, and its docker-archive with skopeo. */
before(async () => {
  tmp = await fsp.mkdtemp(join(tmpdir(), 'blockport-docker-archive-'));
  const layout = join(tmp, 'layout');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:t`]);
  for (const [i, files] of [{ 'app/a.txt': 'hello\n', 'app/big.bin': randomBytes(300_000) }, { 'etc/conf': 'x=1\n' }].entries()) {
    const root = join(tmp, `root${i}`);
    for (const [p, data] of Object.entries(files)) {
      await fsp.mkdir(join(root, p, '..'), { recursive: true });
      await fsp.writeFile(join(root, p), data);
    }
    await run('tar', ['-C', root, '-cf', join(tmp, `layer${i}.tar`), '.']);
    await run('umoci', ['raw', 'add-layer', '--image', `${layout}:t`, join(tmp, `layer${i}.tar`)]);
  }
  layoutImage = await new OciLayout(layout).openImage('t', `oci:${layout}:t`);
  skopeoArchive = join(tmp, 'skopeo.tar');
  await run('skopeo', ['--insecure-policy', 'copy', '-q', `oci:${layout}:t`, `docker-archive:${skopeoArchive}:app:1`]);
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

/** Extracts an archive with GNU tar, lets `edit` change the folder, and tars it again. */
async function retar(archive: string, name: string, edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = await fsp.mkdtemp(join(tmp, 'x-'));
  await run('tar', ['-C', dir, '-xf', archive]);
  await edit(dir);
  const out = join(tmp, name);
  await run('tar', ['-C', dir, '-cf', out, '.']);
  return out;
}

async function editManifest(dir: string, edit: (m: { Config: string; RepoTags: string[]; Layers: string[] }[]) => unknown): Promise<void> {
  const p = join(dir, 'manifest.json');
  const m = JSON.parse(await fsp.readFile(p, 'utf8'));
  await fsp.writeFile(p, JSON.stringify(edit(m) ?? m));
}

async function assertSameImage(r: ImageReader): Promise<void> {
  assert.deepEqual(r.configBytes, layoutImage.configBytes);
  assert.deepEqual(r.config.rootfs.diff_ids, layoutImage.config.rootfs.diff_ids);
  assert.equal(r.manifest.layers.length, 2);
  for (const layer of r.manifest.layers) {
    const got = await drain(await r.openBlob(layer));
    assert.equal(got.digest, layer.digest);
    assert.equal(got.size, layer.size);
  }
  assert.equal((await drain(await r.openBlob(r.manifest.config))).digest, r.manifest.config.digest);
}

describe('indexTarFile', () => {
  it('locates member data behind GNU long names and PAX headers without reading it', async () => {
    const root = await fsp.mkdtemp(join(tmp, 'long-'));
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}-\u00e9.txt`;
    await fsp.mkdir(join(root, 'd'.repeat(120)));
    await fsp.writeFile(join(root, long), 'long name\n');
    await fsp.writeFile(join(root, 'short'), randomBytes(1000));
    for (const format of ['gnu', 'posix']) {
      const file = join(tmp, `long-${format}.tar`);
      await run('tar', ['-C', root, `--format=${format}`, '-cf', file, '.']);
      const index = await indexTarFile(file);
      assert.equal((await readMember(file, requireFile(index, long))).toString(), 'long name\n');
      assert.deepEqual(await readMember(file, requireFile(index, './short')), await fsp.readFile(join(root, 'short')));
      assert.equal(index.members.get('d'.repeat(120))?.type, 'dir');
    }
  });

  it('refuses a compressed archive with a clear EUNSUPPORTED', async () => {
    const gz = join(tmp, 'skopeo.tar.gz');
    await run('sh', ['-c', 'gzip -c "$1" > "$2"', 'sh', skopeoArchive, gz]);
    await assert.rejects(openDockerArchive(gz, undefined, 'test'), (err) => isCode('EUNSUPPORTED')(err) && /gzip/.test((err as Error).message));
  });
});

describe('openDockerArchive', () => {
  it('reads a skopeo docker-archive as the image it was made from', async () => {
    const r = await openDockerArchive(skopeoArchive, 'app:1', 'test');
    await assertSameImage(r);
    // its blobs are archive members: located in the archive file, never linkable blob files
    const spot = await r.locate(r.manifest.layers[0]);
    assert.equal(spot?.path, skopeoArchive);
    assert.equal(spot?.blobFile, false);
    assert.deepEqual(r.manifest.layers.map((l) => l.digest), layoutImage.config.rootfs.diff_ids);
    assert.ok(r.manifest.layers.every((l) => l.mediaType === MediaType.ociLayer));
    assert.equal(JSON.parse(r.manifestBytes.toString()).config.digest, layoutImage.manifest.config.digest);
    // skopeo records docker.io/library/app:1; every spelling of that name finds it, as does no name
    for (const name of ['docker.io/library/app:1', 'library/app:1', undefined]) {
      assert.deepEqual((await openDockerArchive(skopeoArchive, name, 'test')).manifest, r.manifest);
    }
    await assert.rejects(openDockerArchive(skopeoArchive, 'app:2', 'test'), isCode('ENOTFOUND'));
  });

  it('fails the blob stream with EDIGEST when a layer byte is flipped', async () => {
    const bad = join(tmp, 'flipped.tar');
    await fsp.copyFile(skopeoArchive, bad);
    const r = await openDockerArchive(bad, undefined, 'test');
    const member = requireFile(await indexTarFile(bad), `${digestHex(r.manifest.layers[0].digest)}.tar`);
    const fh = await fsp.open(bad, 'r+');
    const one = Buffer.alloc(1);
    await fh.read(one, 0, 1, member.offset + 1000);
    await fh.write(Buffer.from([one[0] ^ 0xff]), 0, 1, member.offset + 1000);
    await fh.close();
    await assert.rejects(drain(await r.openBlob(r.manifest.layers[0])), isCode('EDIGEST'));
    await drain(await r.openBlob(r.manifest.layers[1])); // the other layer is intact
  });

  it('refuses a truncated archive with ECORRUPT', async () => {
    const index = await indexTarFile(skopeoArchive);
    const layer = [...index.members.values()].find((m) => m.size > 100_000)!;
    const bad = join(tmp, 'truncated.tar');
    await fsp.copyFile(skopeoArchive, bad);
    await fsp.truncate(bad, layer.offset + 100);
    await assert.rejects(openDockerArchive(bad, undefined, 'test'), isCode('ECORRUPT'));
  });

  it('refuses manifest.json paths that leave the archive with EUNSAFE', async () => {
    for (const [i, path] of ['../outside.tar', '/etc/passwd', 'a/../../b.tar'].entries()) {
      const bad = await retar(skopeoArchive, `unsafe${i}.tar`, (dir) => editManifest(dir, (m) => void (m[0].Layers[0] = path)));
      await assert.rejects(openDockerArchive(bad, undefined, 'test'), isCode('EUNSAFE'));
    }
  });

  it('picks among several images by name and lists the tags when none is named', async () => {
    const two = await retar(skopeoArchive, 'two.tar', (dir) => editManifest(dir, (m) => [m[0], { ...m[0], RepoTags: ['other:2'] }]));
    await assert.rejects(openDockerArchive(two, undefined, 'test'), (err) => isCode('EUSAGE')(err) && /other:2/.test((err as Error).message));
    await assertSameImage(await openDockerArchive(two, 'other:2', 'test'));
  });

  it('follows symlinked and hard-linked layers (docker save writes both) and refuses links leaving the archive', async () => {
    // skopeo writes <id>/layer.tar -> ../<diff_id>.tar symlinks; point manifest.json at them
    const linkOf = new Map<string, string>();
    const legacy = await retar(skopeoArchive, 'legacy.tar', async (dir) => {
      for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
        if (e.isDirectory()) linkOf.set((await fsp.readlink(join(dir, e.name, 'layer.tar'))).slice(3), `${e.name}/layer.tar`);
      }
      await fsp.mkdir(join(dir, 'hard'));
      await fsp.link(join(dir, await m0Layer(dir)), join(dir, 'hard', 'layer.tar'));
      await editManifest(dir, (m) => void (m[0].Layers = m[0].Layers.map((l) => linkOf.get(l)!)));
    });
    const index = await indexTarFile(legacy);
    assert.deepEqual([...linkOf.values()].map((n) => index.members.get(n)?.type), ['symlink', 'symlink']);
    await assertSameImage(await openDockerArchive(legacy, undefined, 'test'));
    // GNU tar stores the second name of a hard-linked file as a link to the first
    const hardlinked = [...index.members.values()].find((m) => m.type === 'hardlink')!;
    assert.ok(hardlinked);
    assert.equal(requireFile(index, hardlinked.name).name, cleanPath(hardlinked.linkname));
    const escaping = await retar(legacy, 'escaping.tar', async (dir) => {
      const link = [...linkOf.values()][0];
      await fsp.rm(join(dir, link));
      await fsp.symlink('../../../etc/passwd', join(dir, link));
    });
    await assert.rejects(openDockerArchive(escaping, undefined, 'test'), isCode('EUNSAFE'));
  });

  it('reads a Docker 25+ archive through its OCI layout, keeping the manifest byte for byte', async () => {
    const m = layoutImage.manifest;
    const layoutTar = join(tmp, 'layout-as.tar');
    await run('tar', ['-C', layoutImage.layout.root, '-cf', layoutTar, '.']);
    const archive = await retar(layoutTar, 'docker25.tar', (dir) => {
      const entry = { Config: `blobs/sha256/${digestHex(m.config.digest)}`, RepoTags: ['app:1'], Layers: m.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`) };
      return fsp.writeFile(join(dir, 'manifest.json'), JSON.stringify([entry]));
    });
    const r = await openDockerArchive(archive, 'app:1', 'test');
    assert.deepEqual(r.manifestBytes, layoutImage.manifestBytes);
    assert.equal(r.manifestDescriptor.digest, layoutImage.manifestDescriptor.digest);
    await assertSameImage(r);
    // without a matching manifest in index.json, the layers are described from the files themselves
    const bare = await retar(archive, 'docker25-bare.tar', (dir) => fsp.writeFile(join(dir, 'index.json'), '{"schemaVersion":2,"manifests":[]}'));
    const s = await openDockerArchive(bare, 'app:1', 'test');
    assert.deepEqual(s.manifest.layers.map((l) => [l.mediaType, l.digest, l.size]), m.layers.map((l) => [MediaType.ociLayerGzip, l.digest, l.size]));
    await assertSameImage(s);
  });
});

/** The first layer file named in an extracted archive's manifest.json. */
async function m0Layer(dir: string): Promise<string> {
  return JSON.parse(await fsp.readFile(join(dir, 'manifest.json'), 'utf8'))[0].Layers[0];
}

/** The layout image's layers, gunzipped, as a DockerArchiveImage (sizes measured first). */
async function uncompressedImage(): Promise<DockerArchiveImage> {
  const open = (i: number) => async () => (await layoutImage.openBlob(layoutImage.manifest.layers[i])).pipe(createGunzip());
  const layers = [];
  for (const [i, diffId] of layoutImage.config.rootfs.diff_ids.entries()) {
    layers.push({ diffId, size: (await drain(await open(i)())).size, open: open(i) });
  }
  return { configBytes: layoutImage.configBytes, repoTags: ['app:1'], layers };
}

describe('writeDockerArchive', () => {
  it('writes an archive skopeo inspects and copies, manifest.json first', async () => {
    const image = await uncompressedImage();
    const file = join(tmp, 'written.tar');
    await writeDockerArchiveFile(file, image);
    const { stdout } = await run('skopeo', ['inspect', '--config', `docker-archive:${file}`]);
    assert.deepEqual(JSON.parse(stdout).rootfs.diff_ids, layoutImage.config.rootfs.diff_ids);
    const out = join(tmp, 'copied');
    await run('skopeo', ['--insecure-policy', 'copy', '-q', `docker-archive:${file}`, `oci:${out}:t`]);
    const copied = await new OciLayout(out).openImage('t', 'copied');
    assert.deepEqual(copied.config.rootfs.diff_ids, layoutImage.config.rootfs.diff_ids);
    const head = await fsp.readFile(file).then((b) => b.subarray(0, 13).toString());
    assert.equal(head, 'manifest.json');
    await assertSameImage(await openDockerArchive(file, 'app:1', 'test'));
    // the same bytes when streamed
    const streamed = join(tmp, 'streamed.tar');
    await writeDockerArchive(createWriteStream(streamed), image);
    assert.deepEqual(await fsp.readFile(streamed), await fsp.readFile(file));
  });

  it('writes a layer used twice once', async () => {
    const image = await uncompressedImage();
    const config = JSON.parse(image.configBytes.toString());
    config.rootfs.diff_ids.push(config.rootfs.diff_ids[0]);
    const twice = { ...image, configBytes: Buffer.from(JSON.stringify(config)), layers: [...image.layers, image.layers[0]] };
    const file = join(tmp, 'twice.tar');
    await writeDockerArchiveFile(file, twice);
    const index = await indexTarFile(file);
    assert.equal([...index.members.keys()].filter((n) => n.endsWith('.tar')).length, 2);
    const { stdout } = await run('skopeo', ['inspect', `docker-archive:${file}`]);
    assert.deepEqual(JSON.parse(stdout).Layers, config.rootfs.diff_ids);
  });

  it('fails and leaves nothing behind when a layer is not what was promised', async () => {
    const image = await uncompressedImage();
    const dir = await fsp.mkdtemp(join(tmp, 'fail-'));
    const cases: DockerArchiveImage['layers'][number][] = [
      { ...image.layers[1], size: image.layers[1].size + 1 },
      { ...image.layers[1], size: image.layers[1].size - 1 },
      { ...image.layers[1], open: async () => createReadStream(join(tmp, 'layer0.tar')) },
    ];
    for (const bad of cases) {
      const file = join(dir, 'out.tar');
      await assert.rejects(writeDockerArchiveFile(file, { ...image, layers: [image.layers[0], bad] }), isCode('EDIGEST'));
      assert.deepEqual(await fsp.readdir(dir), []);
    }
    const wrongConfig = { ...image, layers: [image.layers[1], image.layers[0]] };
    await assert.rejects(writeDockerArchiveFile(join(dir, 'x.tar'), wrongConfig), isCode('ECORRUPT'));
    assert.deepEqual(await fsp.readdir(dir), []);
  });
});
