/**
 * `blockport build` against the ecosystem: the same inputs give the same digests whatever the
 * disk says (mtimes, owners, umask, creation order); the blocks are the ones blockify gives for
 * a GNU tar image of the same tree; built images materialize and umoci unpacks them to the tree.
 */
import assert from 'node:assert/strict';
import { chmod, chown, mkdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blockport, ok } from './cli.js';
import { gnuTarLayer, javaLikeTree, makeTree, nodeModulesTree, pythonTree, readImage, run, skopeoCopy, tempDir, treeSignature, umociImage, unpackRootfs, type FsNode } from './fixtures/images.js';

type Json = Record<string, any>;
const isRoot = process.getuid?.() === 0;

/** The artifacts of a service: jars, a node_modules tree (scoped, nested, a .bin link), site-packages. */
function artifacts(seed: number): FsNode[] {
  return [
    ...javaLikeTree({ jars: 5, seed, minSize: 20_000, maxSize: 120_000 }),
    ...nodeModulesTree({ packages: 6, seed: seed + 1 }),
    ...pythonTree({ packages: 2, seed: seed + 2, soSize: 20_000 }),
  ];
}

async function tagged(home: string): Promise<string[]> {
  const idx = JSON.parse(await readFile(join(home, 'index.json'), 'utf8').catch(() => '{"manifests":[]}')) as Json;
  return (idx.manifests as Json[]).map((m) => m.annotations?.['org.opencontainers.image.ref.name']);
}

describe('blockport build', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  let tree: string;

  before(async () => {
    t = await tempDir('build');
    env = { BLOCKPORT_HOME: join(t.dir, 'home'), SOURCE_DATE_EPOCH: '' };
    tree = join(t.dir, 'tree');
    await makeTree(tree, artifacts(1));
  });
  after(() => t.cleanup());

  const buildArgs = (src: string, dst: string) => ['build', '--from', 'scratch', '--add', `${src}/usr:/usr`, '--layer', `deps=${src}/app:/app`, '--preset', 'java,node,python', '--platform', 'linux/amd64', '--json', dst];

  it('gives byte-identical manifests whatever mtimes, owners, umask and creation order', async () => {
    const a = JSON.parse((await ok(buildArgs(tree, `oci:${join(t.dir, 'a')}:1`), env)).stdout);
    // the same content, made in reverse order, with other mtimes, group-writable modes and other owners
    const other = join(t.dir, 'tree-other');
    const nodes = artifacts(1).reverse().map((n) => ({ ...n, mtime: 1_700_000_000 + Math.floor(Math.random() * 1000), mode: n.type === 'file' ? ((n.mode ?? 0o644) | 0o020) : n.mode }));
    await makeTree(other, nodes);
    if (isRoot) await chown(join(other, 'usr/share/java/README.txt'), 1234, 5678);
    await utimes(join(other, 'app'), new Date(), new Date());
    const b = JSON.parse((await ok(buildArgs(other, `oci:${join(t.dir, 'b')}:1`), env)).stdout);
    assert.equal(b.manifest.digest, a.manifest.digest);
    assert.equal(b.top.digest, a.top.digest);
    assert.equal(b.config.digest, a.config.digest);
    // SOURCE_DATE_EPOCH moves created and every mtime, so the digests change with it
    const c = JSON.parse((await ok(buildArgs(tree, `oci:${join(t.dir, 'c')}:1`), { ...env, SOURCE_DATE_EPOCH: '1700000000' })).stdout);
    assert.notEqual(c.manifest.digest, a.manifest.digest);
    const { config } = await readImage(join(t.dir, 'c'), '1');
    assert.equal(config.created, '2023-11-14T22:13:20Z');
    assert.deepEqual(config.history.map((h: Json) => h.created), ['2023-11-14T22:13:20Z', '2023-11-14T22:13:20Z']);
    assert.equal(config.history[1].comment, 'deps');
    assert.deepEqual([config.os, config.architecture], ['linux', 'amd64']);
  });

  it('makes the blocks blockify makes of a GNU tar image of the same tree', async () => {
    const built = JSON.parse((await ok(['build', '--from', 'scratch', '--add', `${tree}:/`, '--preset', 'java,node,python', '--json', `oci:${join(t.dir, 'built')}:1`], env)).stdout);
    const layer = join(t.dir, 'gnu.tar');
    await gnuTarLayer(tree, layer);
    const std = join(t.dir, 'std');
    await umociImage(std, '1', [layer]);
    const blockified = JSON.parse((await ok(['blockify', `oci:${std}:1`, `oci:${join(t.dir, 'bf')}:1`, '--preset', 'java,node,python', '--json'], env)).stdout);
    const digests = (r: Json) => (r.blocks as Json[]).map((b) => `${b.mediaType} ${b.digest}`).sort();
    assert.equal(built.blocks.length, 5 + 6 + 4, 'five jars, six packages (the nested one is inside the first), two packages + two dist-infos');
    assert.deepEqual(digests(built), digests(blockified));
    // compressed layers go through a temp tar, not straight from the files: the same blocks, the same diff_ids
    const gz = JSON.parse((await ok(['build', '--from', 'scratch', '--add', `${tree}:/`, '--preset', 'java,node,python', '--compress', 'gzip', '--json', `oci:${join(t.dir, 'built-gz')}:1`], env)).stdout);
    assert.deepEqual(digests(gz), digests(built));
    assert.deepEqual(gz.layers.map((l: Json) => l.diffId), built.layers.map((l: Json) => l.diffId));
    assert.equal((await readImage(join(t.dir, 'built-gz'), '1')).manifest.layers[0].mediaType, 'application/vnd.blockport.layer.v1.tar+gzip');
  });

  it('materializes to the tree: umoci unpacks what was added, owned by root, modes normalised', async () => {
    const out = join(t.dir, 'mat');
    await ok(['materialize', `oci:${join(t.dir, 'built')}:1`, `oci:${out}:1`], env);
    const rootfs = await unpackRootfs(`${out}:1`, join(t.dir, 'unpacked'));
    const sig = await treeSignature(rootfs);
    const want = (await treeSignature(tree)).map((l) => l.replace(/ \d+:\d+/, ' 0:0'));
    assert.deepEqual(sig, want);
  });

  it('keeps a block-form base: its layers and blocks as they are, the new layers after them', async () => {
    const baseTree = join(t.dir, 'base-tree');
    await makeTree(baseTree, javaLikeTree({ jars: 3, seed: 7, minSize: 10_000, maxSize: 30_000 }));
    const layer = join(t.dir, 'base.tar');
    await gnuTarLayer(baseTree, layer);
    const std = join(t.dir, 'base-std');
    await umociImage(std, '1', [layer], { env: ['PATH=/usr/bin', 'JAVA_HOME=/usr/lib/jvm'], cmd: ['/bin/sh'] });
    const base = JSON.parse((await ok(['blockify', `oci:${std}:1`, 'team/base:1', '--preset', 'java', '--json'], env)).stdout);
    const app = join(t.dir, 'app');
    await makeTree(app, [{ path: 'app.jar', type: 'file', content: { size: 5000, seed: 3 } }, { path: 'run.sh', type: 'file', mode: 0o755, content: '#!/bin/sh\n' }]);
    const r = JSON.parse((await ok(['build', '--from', 'team/base:1', '--add', `${app}:/opt/app`, '--preset', 'java', '--entrypoint', '/opt/app/run.sh', '--env', 'JAVA_HOME=/opt/jdk', '--env', 'MODE=prod', '--label', 'team=payments', '--expose', '8080', '--expose', '53/udp', '--workdir', '/opt/app', '--user', '1000:1000', '--tag', 'team/app:1', '--json'], env)).stdout);
    assert.equal(r.baseLayers, 1);
    const baseBlocks = (base.blocks as Json[]).map((b) => b.digest);
    for (const d of baseBlocks) assert.ok(r.blocks.some((b: Json) => b.digest === d), `base block ${d} kept`);
    assert.equal(r.blocks.length, baseBlocks.length + 1);
    const img = await readImage(join(t.dir, 'home'), 'team/app:1');
    const baseImg = await readImage(join(t.dir, 'home'), 'team/base:1');
    assert.deepEqual(img.manifest.layers[0], baseImg.manifest.layers[0]);
    const cfg = img.config.config;
    assert.deepEqual(cfg.Env, ['PATH=/usr/bin', 'JAVA_HOME=/opt/jdk', 'MODE=prod']);
    assert.deepEqual(cfg.Entrypoint, ['/opt/app/run.sh']);
    assert.equal(cfg.Cmd, undefined, 'a new entrypoint clears the base cmd, as in a Dockerfile');
    assert.deepEqual(cfg.ExposedPorts, { '53/udp': {}, '8080/tcp': {} });
    assert.deepEqual([cfg.WorkingDir, cfg.User, cfg.Labels], ['/opt/app', '1000:1000', { team: 'payments' }]);
    assert.deepEqual(img.config.rootfs.diff_ids.slice(0, 1), baseImg.config.rootfs.diff_ids);
    // and from the standard base, a docker-archive of it: the same new layer
    const archive = join(t.dir, 'base.tar.docker');
    await skopeoCopy(`oci:${std}:1`, `docker-archive:${archive}:base:1`);
    const fromArchive = JSON.parse((await ok(['build', '--from', `docker-archive:${archive}`, '--add', `${app}:/opt/app`, '--preset', 'java', '--json', `oci:${join(t.dir, 'from-archive')}:1`], env)).stdout);
    assert.equal(fromArchive.layers[0].diffId, r.layers[0].diffId);
    await ok(['materialize', 'team/app:1', `oci:${join(t.dir, 'app-std')}:1`], env);
  });

  it('reads blockport.json; flags override it; a bad file is one line, exit 2', async () => {
    const dir = join(t.dir, 'project');
    await makeTree(dir, [{ path: 'target/lib/dep.jar', type: 'file', content: { size: 3000, seed: 5 } }, { path: 'target/app.jar', type: 'file', content: 'app' }]);
    const cfg = { from: 'scratch', layers: [{ name: 'deps', files: [{ src: 'target/lib', dest: '/app/lib' }] }, { name: 'app', files: ['target/app.jar:/app/'] }], entrypoint: ['java', '-jar', '/app/app.jar'], env: { A: '1' }, preset: 'java', tag: 'proj:1' };
    await writeFile(join(dir, 'blockport.json'), JSON.stringify(cfg));
    const r = JSON.parse((await ok(['build', '--config', join(dir, 'blockport.json'), '--env', 'B=2', '--tag', 'proj:2', '--json'], env)).stdout);
    assert.deepEqual(r.layers.map((l: Json) => [l.name, l.blocks]), [['deps', 1], ['app', 1]]);
    const img = await readImage(join(t.dir, 'home'), 'proj:2');
    assert.deepEqual(img.config.config.Env, ['A=1', 'B=2']);
    assert.deepEqual(img.config.config.Entrypoint, ['java', '-jar', '/app/app.jar']);
    assert.ok(!(await tagged(join(t.dir, 'home'))).includes('proj:1'), 'the flag replaced the file\'s tag');
    for (const [bad, msg] of [
      [{ ...cfg, entryPoint: 'x' }, /unknown key "entryPoint"/],
      [{ ...cfg, layers: [{ files: [{ src: 'a' }] }] }, /layers\[0\]\.files\[0\]: "dest" must be a non-empty string/],
      [{ ...cfg, expose: 'x' }, /"expose" must be an array/],
    ] as const) {
      await writeFile(join(dir, 'bad.json'), JSON.stringify(bad));
      const b = await blockport(['build', '--config', join(dir, 'bad.json')], env);
      assert.equal(b.code, 2, b.stderr);
      assert.match(b.stderr, msg);
      assert.equal(b.stderr.trim().split('\n').length, 1);
    }
  });

  it('records --platform in the config and the tag\'s descriptor; a base of another platform is refused', async () => {
    const src = join(t.dir, 'plat');
    await makeTree(src, [{ path: 'a.txt', type: 'file', content: 'a' }]);
    await ok(['build', '--from', 'scratch', '--add', `${src}:/`, '--platform', 'linux/arm64/v8', `oci:${join(t.dir, 'arm')}:1`], env);
    const { config } = await readImage(join(t.dir, 'arm'), '1');
    assert.deepEqual([config.os, config.architecture, config.variant], ['linux', 'arm64', 'v8']);
    const index = JSON.parse(await readFile(join(t.dir, 'arm', 'index.json'), 'utf8'));
    assert.deepEqual(index.manifests[0].platform, { os: 'linux', architecture: 'arm64', variant: 'v8' });
    const r = await blockport(['build', '--from', `oci:${join(t.dir, 'arm')}:1`, '--add', `${src}:/b`, '--platform', 'linux/amd64', '--tag', 'bad:1'], env);
    assert.equal(r.code, 9, r.stderr);
    assert.match(r.stderr, /is linux\/arm64\/v8, not linux\/amd64/);
  });

  describe('bad input: one line, the README exit code, nothing tagged', () => {
    const cases: Array<[string, (dir: string) => Promise<string[]>, number, RegExp]> = [
      ['a missing --add source', async (d) => ['--add', `${join(d, 'nope')}:/app`], 3, /no such file/],
      ['a DEST escaping the root', async (d) => ['--add', `${d}:/../etc`], 5, /escapes the image root/],
      ['a symlink pointing outside the source', async (d) => {
        await mkdir(join(d, 'out'), { recursive: true });
        await symlink('../../../etc/passwd', join(d, 'out', 'passwd'));
        return ['--add', `${join(d, 'out')}:/app`];
      }, 5, /points outside the source folder/],
      ['an absolute symlink', async (d) => {
        await mkdir(join(d, 'abs'), { recursive: true });
        await symlink('/etc/passwd', join(d, 'abs', 'passwd'));
        return ['--add', `${join(d, 'abs')}:/app`];
      }, 5, /points outside the source folder/],
      ['a base image that is not there', async (d) => ['--from', 'nobody/base:1', '--add', `${d}/ok:/app`], 3, /no image nobody\/base:1/],
      ['a base layout that is not there', async (d) => ['--from', `oci:${d}/missing:1`, '--add', `${d}/ok:/app`], 3, /not an OCI image layout/],
    ];
    for (const [what, setup, code, msg] of cases) {
      it(what, async () => {
        const d = join(t.dir, `bad-${what.replace(/\W+/g, '-')}`);
        await makeTree(join(d, 'ok'), [{ path: 'f.txt', type: 'file', content: 'x' }]);
        const args = await setup(d);
        const r = await blockport(['build', '--from', 'scratch', ...args, '--tag', 'bad:1'], env);
        assert.equal(r.code, code, r.stderr);
        assert.match(r.stderr, msg);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.ok(!(await tagged(join(t.dir, 'home'))).includes('bad:1'));
      });
    }

    it('an unreadable file (run as an unprivileged user when root)', async (ctx) => {
      const d = join(t.dir, 'unreadable');
      await makeTree(d, [{ path: 'src/ok.txt', type: 'file', content: 'ok' }, { path: 'src/secret.key', type: 'file', content: 'k', mode: 0o000 }]);
      const home = join(d, 'home');
      await mkdir(home);
      await chmod(t.dir, 0o711); // the unprivileged user must reach the test's folders
      await chmod(d, 0o777);
      await chmod(home, 0o777);
      const args = ['build', '--from', 'scratch', '--add', `${d}/src:/app`, '--tag', 'bad:1'];
      let r;
      if (isRoot) {
        try {
          await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']);
        } catch {
          return ctx.skip('running as root and setpriv cannot drop privileges here');
        }
        const { CLI } = await import('./cli.js');
        r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, ...args], { env: { ...process.env, BLOCKPORT_HOME: home } }).then(
          () => ({ code: 0, stderr: '' }),
          (err: Error) => ({ code: Number(/failed \((\d+)\)/.exec(err.message)?.[1] ?? -1), stderr: err.message.replace(/^.*?failed \(\d+\): /s, '') }),
        );
      } else {
        r = await blockport(args, { BLOCKPORT_HOME: home });
      }
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /secret\.key: permission denied/);
      assert.ok(!(await tagged(home)).includes('bad:1'));
    });
  });

  it('a file rewritten while the image is built fails the build (exit code 4) and tags nothing', async () => {
    const { build } = await import('../src/build/build.js');
    await import('../src/transports.js');
    const src = join(t.dir, 'changing');
    await makeTree(src, [{ path: 'a.txt', type: 'file', content: 'a' }, { path: 'z-big.jar', type: 'file', content: { size: 3_000_000, seed: 8 } }]);
    let cut = false;
    const home = join(t.dir, 'changing-home');
    const run = build(
      { from: 'scratch', layers: [{ files: [{ src, dest: '/app' }] }], preset: ['java'], to: `oci:${home}:1` },
      { env: {}, onProgress: () => { if (!cut) { cut = true; truncateSync(join(src, 'z-big.jar'), 1000); } } },
    );
    await assert.rejects(run, (e: Error & { code?: string; exitCode?: number }) => e.code === 'EDIGEST' && e.exitCode === 4 && /z-big\.jar: changed while the image was built/.test(e.message));
    assert.ok(cut);
    assert.deepEqual(await tagged(home), []);
  });

  it('stats: blocks shared by images and teams, and the bytes saved', async () => {
    const home = { BLOCKPORT_HOME: join(t.dir, 'stats-home'), SOURCE_DATE_EPOCH: '' };
    const v1 = join(t.dir, 'svc1');
    const v2 = join(t.dir, 'svc2');
    await makeTree(v1, javaLikeTree({ jars: 4, seed: 21, minSize: 50_000, maxSize: 60_000 }));
    await makeTree(v2, javaLikeTree({ jars: 4, seed: 21, minSize: 50_000, maxSize: 60_000, changed: [0] }));
    await ok(['build', '--from', 'scratch', '--add', `${v1}:/`, '--preset', 'java', '--tag', 'payments/api:1'], home);
    await ok(['build', '--from', 'scratch', '--add', `${v2}:/`, '--preset', 'java', '--tag', 'billing/api:1'], home);
    await ok(['build', '--from', 'scratch', '--add', `${v2}:/`, '--preset', 'java', '--tag', 'billing/worker:1'], home);
    const s = JSON.parse((await ok(['stats', '--json'], home)).stdout);
    assert.deepEqual(s.images, ['billing/api:1', 'billing/worker:1', 'payments/api:1']);
    assert.deepEqual(s.teams, ['billing', 'payments']);
    assert.equal(s.blocks.length, 5, 'four jars + the changed one');
    assert.equal(s.blocks[0].images.length, 3);
    assert.equal(s.blocks[0].teams.length, 2);
    assert.equal(s.sharedBlocks, 4);
    // the three shared jars stored once instead of three times, the changed one once instead of twice
    assert.ok(s.savedBytes > (3 * 2 + 1) * 50_000, `saved ${s.savedBytes}`);
    assert.equal(s.layerBytes - s.storeBytes, s.savedBytes);
    const one = JSON.parse((await ok(['stats', 'payments/api:1', '--json'], home)).stdout);
    assert.equal(one.sharedBlocks, 0);
    const missing = await blockport(['stats', 'nope:1'], home);
    assert.equal(missing.code, 3);
    await rm(home.BLOCKPORT_HOME, { recursive: true, force: true });
  });
});
