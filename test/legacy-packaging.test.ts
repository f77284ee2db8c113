/**
 * Block-form images packaged the way earlier versions wrote them (an index with carrier manifests,
 * docs/spec.md 5.3) still materialize, copy with the same digest, push and pull.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ok } from './cli.js';
import { gnuTarLayer, javaLikeTree, makeTree, readImage, run, tempDir, umociImage } from './fixtures/images.js';
import { getJson, startRegistry, type Json, type LocalRegistry } from './fixtures/registry.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function putBlob(layout: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha(bytes);
  await writeFile(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.length };
}

/** Re-tags `tag` of `layout` as the index packaging of 5.3: block-form manifest, one carrier, index. */
async function toIndexPackaging(layout: string, tag: string): Promise<string> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  const entry = index.manifests.find((m: Json) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const top = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', entry.digest.slice(7)), 'utf8'));
  const mdesc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: top.config.digest, size: top.config.size };
  const manifest = JSON.parse(await readFile(join(layout, 'blobs', 'sha256', mdesc.digest.slice(7)), 'utf8'));
  const empty = await putBlob(layout, Buffer.from('{}'));
  const carrier = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: 'application/vnd.blockport.blocks.v1',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', ...empty },
    layers: manifest.blocks,
    subject: mdesc,
    annotations: { 'io.blockport.format': '1' },
  };
  const cdesc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...(await putBlob(layout, Buffer.from(JSON.stringify(carrier)))), artifactType: 'application/vnd.blockport.blocks.v1' };
  const idx = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', artifactType: 'application/vnd.blockport.image.v1', manifests: [{ ...mdesc, platform: { architecture: 'amd64', os: 'linux' } }, cdesc], annotations: { 'io.blockport.format': '1' } };
  const idesc = { mediaType: 'application/vnd.oci.image.index.v1+json', ...(await putBlob(layout, Buffer.from(JSON.stringify(idx)))), artifactType: 'application/vnd.blockport.image.v1' };
  Object.assign(entry, idesc);
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  return idesc.digest;
}

describe('block-form images in the index packaging of earlier versions', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let reg: LocalRegistry;
  let env: NodeJS.ProcessEnv;
  let legacy: string;
  let digest: string;
  let diffIds: string[];

  before(async () => {
    t = await tempDir('legacy');
    env = { BLOCKPORT_HOME: join(t.dir, 'home'), DOCKER_CONFIG: join(t.dir, 'docker-config'), BLOCKPORT_REGISTRY_AUTH: '', REGISTRY_AUTH_FILE: '', XDG_RUNTIME_DIR: '' };
    await mkdir(env.DOCKER_CONFIG!);
    await makeTree(join(t.dir, 'tree'), javaLikeTree({ jars: 4, seed: 3, minSize: 50_000, maxSize: 120_000 }));
    await gnuTarLayer(join(t.dir, 'tree'), join(t.dir, 'java.tar'));
    await umociImage(join(t.dir, 'src'), '1', [join(t.dir, 'java.tar')], { cmd: ['/bin/sh'] });
    diffIds = (await readImage(join(t.dir, 'src'), '1')).config.rootfs.diff_ids;
    legacy = join(t.dir, 'legacy');
    await ok(['blockify', `oci:${join(t.dir, 'src')}:1`, `oci:${legacy}:1`, '--preset', 'java'], env);
    digest = await toIndexPackaging(legacy, '1');
    reg = await startRegistry(join(t.dir, 'registry'));
  });
  after(async () => {
    await reg?.stop();
    await t?.cleanup();
  });

  it('materializes, copies into the store with the same digest, pushes with child tags and pulls back', async () => {
    const out = join(t.dir, 'legacy.tar');
    await ok(['materialize', `oci:${legacy}:1`, `docker-archive:${out}`], env);
    assert.deepEqual(JSON.parse((await run('skopeo', ['inspect', `docker-archive:${out}`])).stdout).Layers, diffIds);
    const copied = JSON.parse((await ok(['copy', `oci:${legacy}:1`, 'old:1', '--json'], env)).stdout);
    assert.equal(copied.top.digest, digest);
    await ok(['push', 'old:1', `docker://${reg.host}/old:1`], env);
    assert.deepEqual((await getJson(reg.host, '/v2/old/tags/list')).tags.sort(), ['1', '1.blockport-0', '1.blockport-1']);
    const pulled = JSON.parse((await ok(['pull', `docker://${reg.host}/old:1`, 'again:1', '--json'], { ...env, BLOCKPORT_HOME: join(t.dir, 'home2') })).stdout);
    assert.equal(pulled.top.digest, digest);
    await ok(['materialize', 'again:1', `docker-archive:${join(t.dir, 'again.tar')}`], { ...env, BLOCKPORT_HOME: join(t.dir, 'home2') });
  });
});
