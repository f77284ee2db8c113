/**
 * Hostile and damaged inputs: every refusal is one `blockport: ...` line on stderr with the exit
 * code of its error class, and leaves the destination as it was: no new tag, no output file, no
 * temporary file beside it or in the temp folder.
 */
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { blockport, ok } from './cli.js';
import { gnuTarLayer, makeTree, run, skopeoCopy, tempDir, umociImage } from './fixtures/images.js';
import {
  blobPath, blockFormImage, craftTar, deadPid, entryBytes, flipByte, readBlobJson, rewriteBlockLayers,
  sha256, sleeper, tempFilesIn, truncateTo, withImportPath, writeDockerArchive, writeImageLayout, type LayerEntry,
} from './fixtures/hostile.js';
import { tarCases } from './fixtures/hostile/cases.js';

const EXIT = { usage: 2, corrupt: 4, unsafe: 5, missing: 6, locked: 7 };

describe('hostile inputs are refused and change nothing', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  let env: NodeJS.ProcessEnv;
  let tmp: string; // the TMPDIR of every run: must be empty after each
  let std: string; // a standard image made by GNU tar and umoci
  let bf: string; // its block form
  let cases = 0;

  before(async () => {
    t = await tempDir('hostile');
    tmp = join(t.dir, 'tmp');
    await mkdir(tmp);
    env = { BLOCKPORT_HOME: join(t.dir, 'home'), TMPDIR: tmp };
    const root = join(t.dir, 'tree');
    await makeTree(root, [
      { path: 'app/passwd', type: 'file', content: 'root:x:0:0:root:/root:/bin/sh\n' },
      { path: 'app/lib/big.jar', type: 'file', content: { size: 300_000, seed: 1 } },
      { path: 'app/lib/small.jar', type: 'file', content: { size: 20_000, seed: 2 } },
      { path: 'etc/hostname', type: 'file', content: 'box\n' },
    ]);
    await gnuTarLayer(root, join(t.dir, 'layer.tar'));
    std = join(t.dir, 'std');
    await umociImage(std, 'v1', [join(t.dir, 'layer.tar')]);
    bf = join(t.dir, 'bf');
    await ok(['blockify', `oci:${std}:v1`, `oci:${bf}:1`, '--preset', 'java', '--include', 'passwd'], env);
    // the store already holds an image: refusals must leave its index.json as it is
    await ok(['blockify', `oci:${std}:v1`, 'keep:1', '--preset', 'java'], env);
  });
  after(() => t.cleanup());

  /** A fresh case folder: `out/` holding a layout with one image, and a copy of `from` if given. */
  async function scene(from?: string): Promise<{ dir: string; src: string; out: string; layout: string }> {
    const dir = join(t.dir, `case-${++cases}`);
    const src = join(dir, 'src');
    if (from) await cp(from, src, { recursive: true });
    const out = join(dir, 'out');
    const layout = join(out, 'layout');
    await writeImageLayout(layout, 'keep', [craftTar([{ path: 'keep.txt', content: 'keep\n' }])]);
    return { dir, src, out, layout };
  }

  async function snapshot(dirs: string[]): Promise<string[]> {
    const out: string[] = [];
    for (const d of dirs) {
      out.push(`${d}: ${(await readdir(d).catch(() => [])).sort().join(',')}`);
      out.push(`${d}/index.json: ${await readFile(join(d, 'index.json'), 'utf8').catch(() => '-')}`);
    }
    return out;
  }

  /**
   * Runs the CLI and checks the refusal: exit code, one line naming the problem, and `watch`ed
   * folders (layouts, the store, the folder of an output file) unchanged and free of temp files.
   */
  async function refused(args: string[], code: number, message: RegExp, watch: string[]): Promise<string> {
    const home = env.BLOCKPORT_HOME!;
    const dirs = [...watch, home];
    const before = await snapshot(dirs);
    const r = await blockport(args, env);
    assert.equal(r.code, code, `exit code of blockport ${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^blockport: [^\n]+\n$/, `one line on stderr, got ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
    // blobs may remain in a content-addressed layout (garbage, spec 8); tags and other files may not
    assert.deepEqual(await snapshot(dirs), before);
    for (const d of dirs) assert.deepEqual(await tempFilesIn(d), [], `temp files left in ${d}`);
    assert.deepEqual(await readdir(tmp), [], 'temp files left in TMPDIR');
    return r.stderr;
  }

  describe('unsafe paths', () => {
    it('blockify refuses a layer entry named ../escape', async () => {
      const s = await scene();
      await writeImageLayout(s.src, 'x', [craftTar([{ path: 'ok.txt', content: 'fine\n' }, { path: '../escape', content: 'gotcha\n' }])]);
      await refused(['blockify', `oci:${s.src}:x`, `oci:${s.layout}:new`, '--min-size', '1'], EXIT.unsafe, /\.\.\/escape/, [s.layout]);
      await refused(['blockify', `oci:${s.src}:x`, 'escape:1'], EXIT.unsafe, /escape/, []);
    });

    for (const [name, path] of [['a path outside its folder', '/etc/passwd'], ['a path climbing out of the root', '/../etc/passwd'], ['a folder path through ..', '/app/../../etc/passwd']] as const) {
      it(`materialize refuses an import entry declaring ${name}`, async () => {
        const s = await scene(bf);
        const edits = await rewriteBlockLayers(s.src, '1', (e) => (e.path === 'app/.import.passwd' ? withImportPath(e, path) : undefined));
        assert.equal(edits, 1);
        await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.unsafe, /import entry|escapes the root/, [s.out]);
        await refused(['materialize', `oci:${s.src}:1`, `oci:${s.layout}:new`], EXIT.unsafe, /passwd/, [s.out, s.layout]);
        await refused(['materialize', `oci:${s.src}:1`, 'passwd:1'], EXIT.unsafe, /passwd/, []);
      });
    }

    it('materialize refuses an import below a symlink of the same layer (app -> /etc)', async () => {
      const s = await scene(bf);
      const edits = await rewriteBlockLayers(s.src, '1', (e) => (e.path === 'app' && e.type === 'dir' ? entryBytes({ path: './app', type: 'symlink', linkname: '/etc' }) : undefined));
      assert.equal(edits, 1);
      const { manifest } = await blockFormImage(s.src, '1');
      const text = (await run('sh', ['-c', `tar -tvf '${blobPath(s.src, manifest.layers[0].digest)}'`])).stdout;
      assert.match(text, /app -> \/etc/);
      assert.match(text, /app\/\.import\.passwd/);
      await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.unsafe, /symlink \/app/, [s.out]);
      await refused(['materialize', `oci:${s.src}:1`, `oci:${s.layout}:new`], EXIT.unsafe, /symlink \/app/, [s.out, s.layout]);
    });

    it('blockify refuses a layer that writes through its own symlink (app -> /etc, then app/passwd)', async () => {
      const s = await scene();
      await writeImageLayout(s.src, 'x', [craftTar([{ path: 'app', type: 'symlink', linkname: '/etc' }, { path: 'app/passwd', content: 'root:x:0:0::/:/bin/sh\n' }])]);
      await refused(['blockify', `oci:${s.src}:x`, `oci:${s.layout}:new`, '--include', 'passwd'], EXIT.unsafe, /symlink \/app/, [s.layout]);
      // whether or not a block would be made: the runtime would unpack /etc/passwd of the host
      await refused(['blockify', `oci:${s.src}:x`, `oci:${s.layout}:plain`], EXIT.unsafe, /app\/passwd goes through the symlink \/app/, [s.layout]);
    });
  });

  describe('missing and corrupt blocks', () => {
    it('materialize names a missing block and writes nothing', async () => {
      const s = await scene(bf);
      const { manifest } = await blockFormImage(s.src, '1');
      const block = manifest.blocks.find((b: { annotations: Record<string, string> }) => b.annotations['io.blockport.block.path'] === '/app/lib/small.jar');
      await rm(blobPath(s.src, block.digest));
      const msg = await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.missing, /block/, [s.out]);
      assert.ok(msg.includes(block.digest), msg);
      await refused(['materialize', `oci:${s.src}:1`, `oci:${s.layout}:new`], EXIT.missing, new RegExp(block.digest), [s.out, s.layout]);
    });

    it('materialize names a corrupt block (one byte flipped) and writes nothing', async () => {
      const s = await scene(bf);
      const { manifest } = await blockFormImage(s.src, '1');
      const block = manifest.blocks.find((b: { annotations: Record<string, string> }) => b.annotations['io.blockport.block.path'] === '/app/lib/big.jar');
      await flipByte(blobPath(s.src, block.digest), 150_000);
      await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.corrupt, new RegExp(`block ${block.digest} is corrupt \\(layer 1 `), [s.out]);
      await refused(['materialize', `oci:${s.src}:1`, `oci:${s.layout}:new`], EXIT.corrupt, new RegExp(`block ${block.digest} is corrupt`), [s.out, s.layout]);
      await refused(['materialize', `oci:${s.src}:1`, 'corrupt:1'], EXIT.corrupt, new RegExp(block.digest), []);
    });
  });

  describe('damaged sources', () => {
    async function layerOf(layout: string, tag: string): Promise<string> {
      const top = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')).manifests.find((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'] === tag);
      return (await readBlobJson(layout, top.digest)).layers[0].digest;
    }

    it('blockify refuses a truncated layer blob', async () => {
      const s = await scene(std);
      const file = blobPath(s.src, await layerOf(s.src, 'v1'));
      await truncateTo(file, Math.floor((await stat(file)).size / 2));
      await refused(['blockify', `oci:${s.src}:v1`, `oci:${s.layout}:new`, '--preset', 'java'], EXIT.corrupt, /truncated|unexpected end/, [s.layout]);
    });

    it('materialize names a block-form layer blob whose file data was changed, and writes nothing', async () => {
      const s = await scene(bf);
      const { manifest } = await blockFormImage(s.src, '1');
      const file = blobPath(s.src, manifest.layers[0].digest);
      // GNU tar -R gives each entry's header block: flip the first byte of /etc/hostname's data
      const listing = (await run('tar', ['-tvRf', file])).stdout.split('\n').find((l) => l.endsWith('etc/hostname'));
      const block = Number(/^block (\d+):/.exec(listing ?? '')?.[1]);
      assert.ok(Number.isInteger(block), `etc/hostname not found in the layer: ${listing}`);
      await flipByte(file, (block + 1) * 512);
      const layer = new RegExp(`layer blob ${manifest.layers[0].digest} is corrupt \\(layer 1 `);
      await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.corrupt, layer, [s.out]);
      await refused(['materialize', `oci:${s.src}:1`, `oci:${s.layout}:new`], EXIT.corrupt, layer, [s.out, s.layout]);
    });

    it('materialize refuses a truncated block-form layer blob', async () => {
      const s = await scene(bf);
      const { manifest } = await blockFormImage(s.src, '1');
      const file = blobPath(s.src, manifest.layers[0].digest);
      await truncateTo(file, Math.floor((await stat(file)).size / 2));
      await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.corrupt, /truncated|unexpected end/, [s.out]);
      await refused(['materialize', `oci:${s.src}:1`, `oci:${s.layout}:new`], EXIT.corrupt, /truncated|unexpected end/, [s.out, s.layout]);
    });

    it('blockify refuses a layer blob whose bytes do not match its digest', async () => {
      const s = await scene(std);
      const digest = await layerOf(s.src, 'v1');
      // the same tar compressed differently: decompresses fine, but is not the blob the manifest names
      const tar = (await run('sh', ['-c', `gzip -dc '${blobPath(s.src, digest)}' | gzip -1 | base64 -w0`])).stdout;
      await writeFile(blobPath(s.src, digest), Buffer.from(tar, 'base64'));
      await refused(['blockify', `oci:${s.src}:v1`, `oci:${s.layout}:new`, '--preset', 'java'], EXIT.corrupt, new RegExp(digest), [s.layout]);
    });

    it('blockify refuses a layer blob with one byte flipped', async () => {
      const s = await scene(std);
      const digest = await layerOf(s.src, 'v1');
      const file = blobPath(s.src, digest);
      await flipByte(file, Math.floor((await stat(file)).size / 2));
      await refused(['blockify', `oci:${s.src}:v1`, `oci:${s.layout}:new`, '--preset', 'java'], EXIT.corrupt, /./, [s.layout]);
    });

    for (const [what, mangle] of [
      ['a bad gzip header', (gz: Buffer) => Buffer.concat([gz.subarray(0, 3), Buffer.from([0xff]), gz.subarray(4)])],
      ['a truncated gzip stream', (gz: Buffer) => gz.subarray(0, gz.length >> 1)],
    ] as const) {
      it(`blockify and materialize refuse a layer with ${what}, even when its digest is right`, async () => {
        const s = await scene();
        const layer = craftTar([{ path: 'big.jar', content: Buffer.alloc(3 << 20, 7) }, { path: 'etc/motd', content: 'hi\n' }]);
        const { layerDigests } = await writeImageLayout(s.src, 'x', [layer], { mangle });
        const msg = await refused(['blockify', `oci:${s.src}:x`, `oci:${s.layout}:new`, '--preset', 'java'], EXIT.corrupt, /corrupt gzip data/, [s.layout]);
        assert.ok(msg.includes(layerDigests[0]), msg);
        await refused(['materialize', `oci:${s.src}:x`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.corrupt, /corrupt gzip data/, [s.out]);
      });
    }

    it('blockify refuses a config whose diff_ids do not match the layers', async () => {
      const s = await scene();
      const layer = craftTar([{ path: 'a.jar', content: 'not really a jar\n' }]);
      const lie = sha256('another layer');
      await writeImageLayout(s.src, 'x', [layer], { diffIds: [lie] });
      const msg = await refused(['blockify', `oci:${s.src}:x`, `oci:${s.layout}:new`, '--preset', 'java'], EXIT.corrupt, /diff_id/, [s.layout]);
      assert.ok(msg.includes(lie), msg);
    });

    it('blockify refuses a truncated docker-archive', async () => {
      const s = await scene();
      await mkdir(s.src, { recursive: true });
      const archive = join(s.src, 'image.tar');
      await skopeoCopy(`oci:${std}:v1`, `docker-archive:${archive}:app:1`);
      const size = (await stat(archive)).size;
      await truncateTo(archive, size - 2048 - 100_000); // inside the last member, the layer
      await refused(['blockify', `docker-archive:${archive}`, `oci:${s.layout}:new`, '--preset', 'java'], EXIT.corrupt, /truncated/, [s.layout, s.src]);
      await refused(['inspect', `docker-archive:${archive}`], EXIT.corrupt, /truncated/, [s.src]);
    });
  });

  describe('the hostile tar corpus (test/fixtures/hostile) through blockify from a docker-archive', () => {
    // every file a block (--min-size 1) and every node_modules package a folder block: the
    // accepted layers go through import entries and back
    const rules = ['--preset', 'node', '--min-size', '1'];
    for (const c of tarCases()) {
      it(`${c.name}: ${c.blockify.code === 0 ? 'blockified and materialized byte for byte' : `exit ${c.blockify.code}`}`, async () => {
        const s = await scene();
        await mkdir(s.src, { recursive: true });
        const archive = join(s.src, 'image.tar');
        await writeDockerArchive(archive, 'hostile:1', [c.tar]);
        if ('message' in c.blockify) {
          await refused(['blockify', `docker-archive:${archive}`, `oci:${s.layout}:new`, ...rules], c.blockify.code, c.blockify.message, [s.layout, s.src]);
          await refused(['blockify', `docker-archive:${archive}`, `corpus-${c.name}:1`, ...rules], c.blockify.code, c.blockify.message, [s.src]);
          return;
        }
        const tag = `corpus-${c.name}:1`;
        await ok(['blockify', `docker-archive:${archive}`, tag, ...rules], env);
        // materialize checks every layer against its diff_id: exit 0 is the very input layer
        const out = join(s.out, 'again.tar');
        await ok(['materialize', tag, `docker-archive:${out}:hostile:1`, '--verify'], env);
        const listed = (await run('tar', ['-tf', out])).stdout;
        assert.ok(listed.includes(`${sha256(c.tar).slice(7)}/layer.tar`) || listed.includes(sha256(c.tar).slice(7)), listed);
        await ok(['rmi', tag], env);
      });
    }
  });

  describe('accepted corpus layers, streamed (gzip layers of an OCI layout)', () => {
    const rules = ['--preset', 'node', '--min-size', '1'];
    for (const c of tarCases().filter((x) => ['nonzero-padding', 'tail-2mib', 'names-not-utf8', 'global-path-dotdot', 'old-gnu-sparse-extended', 'pax-then-end'].includes(x.name))) {
      it(`${c.name}: blockified and materialized byte for byte`, async () => {
        const s = await scene();
        await writeImageLayout(s.src, 'x', [c.tar]);
        const tag = `streamed-${c.name}:1`;
        await ok(['blockify', `oci:${s.src}:x`, tag, ...rules], env);
        await ok(['materialize', tag, `oci:${s.layout}:again`, '--verify'], env);
        await ok(['rmi', tag], env);
        assert.deepEqual(await readdir(tmp), [], 'temp files left in TMPDIR');
      });
    }
  });

  describe('import entries that lie', () => {
    /** Edits the import entry of /app/passwd in the block-form image: `edit` gets and returns its text lines. */
    async function withText(edit: (lines: string[]) => string[]): Promise<Awaited<ReturnType<typeof scene>>> {
      const s = await scene(bf);
      const n = await rewriteBlockLayers(s.src, '1', (e: LayerEntry) => (e.path === 'app/.import.passwd' ? entryBytes({ path: e.path, content: `${edit(e.data.toString('utf8').trimEnd().split('\n')).join('\n')}\n` }) : undefined));
      assert.equal(n, 1);
      return s;
    }
    const cases: [string, (l: string[]) => string[], number, RegExp][] = [
      ['a size the block does not have', (l) => l.map((x) => (x.startsWith('size ') ? 'size 12' : x)), EXIT.corrupt, /size 12 differs from block/],
      ['a huge size', (l) => l.map((x) => (x.startsWith('size ') ? 'size 9007199254740993' : x)), EXIT.corrupt, /invalid size/],
      ['a block the manifest does not list', (l) => [l[0], l[1].replace(/sha256:[0-9a-f]{64}/, sha256('not a block')), ...l.slice(2)], EXIT.missing, /does not list/],
      ['a file block read as a folder block', (l) => [l[0], l[1].replace(' from', '/ from')], EXIT.corrupt, /is a application\/vnd\.blockport\.block\.file\.v1, not a application\/vnd\.blockport\.block\.dir/],
      ['a repeated key', (l) => [...l, l.find((x) => x.startsWith('size '))!], EXIT.corrupt, /size repeated/],
      ['a raw header naming another file', (l) => l.map((x) => (x.startsWith('raw ') ? `raw ${Buffer.concat([Buffer.from('app/other'), Buffer.from(x.slice(4), 'base64').subarray(9)]).toString('base64')}` : x)), EXIT.corrupt, /raw header|checksum/],
    ];
    for (const [what, edit, code, message] of cases) {
      it(`materialize refuses an import entry with ${what}`, async () => {
        const s = await withText(edit);
        await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], code, message, [s.out]);
        await refused(['materialize', `oci:${s.src}:1`, `oci:${s.layout}:new`], code, message, [s.out, s.layout]);
      });
    }

    it('materialize refuses an import text over 1 MiB before reading it (EUNSAFE)', async () => {
      const s = await scene(bf);
      const n = await rewriteBlockLayers(s.src, '1', (e: LayerEntry) => (e.path === 'app/.import.passwd' ? entryBytes({ path: e.path, content: Buffer.alloc((1 << 20) + 1, 0x61) }) : undefined));
      assert.equal(n, 1);
      await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.unsafe, /import entry of 1048577 bytes is larger than 1048576/, [s.out]);
    });

    it('materialize refuses a hard link entry of a block-form layer that leaves the root', async () => {
      const s = await scene(bf);
      const n = await rewriteBlockLayers(s.src, '1', (e: LayerEntry) => (e.path === 'etc/hostname' ? entryBytes({ path: 'etc/hostname', type: 'hardlink', linkname: '../../../../etc/passwd' }) : undefined));
      assert.equal(n, 1);
      await refused(['materialize', `oci:${s.src}:1`, `docker-archive:${join(s.out, 'x.tar')}`], EXIT.unsafe, /hard link target.*etc\/passwd/, [s.out]);
      await refused(['materialize', `oci:${s.src}:1`, 'hardlink:1'], EXIT.unsafe, /etc\/passwd/, []);
    });
  });

  describe('usage errors', () => {
    const cases: [string, string[], RegExp][] = [
      ['an unknown preset', ['blockify', 'SRC', 'y:1', '--preset', 'kotlin'], /unknown preset "kotlin"/],
      ['an unknown compression', ['blockify', 'SRC', 'y:1', '--compress', 'lz4'], /unknown compression "lz4"/],
      ['a store name with capitals', ['blockify', 'SRC', 'Bad:1'], /invalid image name "Bad:1"/],
      ['a store name without a tag', ['materialize', 'app', 'OUT'], /invalid image name "app"/],
      ['an oci: reference without a folder', ['inspect', 'oci:'], /missing directory/],
      ['an invalid tag', ['blockify', 'SRC', 'oci:x:bad tag'], /invalid tag "bad tag"/],
      ['a bad docker-archive name', ['materialize', 'SRC', 'docker-archive:out.tar:UP:1'], /invalid image name "UP:1"/],
    ];
    for (const [what, args, message] of cases) {
      it(`exit 2 for ${what}`, async () => {
        const s = await scene();
        const at = (a: string) => (a === 'SRC' ? `oci:${std}:v1` : a === 'OUT' ? `oci:${s.layout}:new` : a.replace(/^(oci|docker-archive):(x|out\.tar)/, (_, tr, p) => `${tr}:${join(s.dir, p)}`));
        const r = await refused(args.map(at), EXIT.usage, message, [s.layout, s.dir]);
        assert.ok(!/\n./.test(r.trimEnd()), r);
      });
    }

    it('exit 2 for a missing argument or an unknown option', async () => {
      assert.equal((await blockport(['blockify', 'oci:x:1'], env)).code, EXIT.usage);
      assert.equal((await blockport(['blockify', '--no-such-option', 'oci:x:1', 'y:1'], env)).code, EXIT.usage);
    });
  });

  describe('the store in use', () => {
    const lock = () => join(env.BLOCKPORT_HOME!, '.index.lock');

    it('blockify into the store fails with ELOCKED while a live process holds the index lock', async () => {
      const holder = sleeper();
      try {
        await writeFile(lock(), `${holder.pid}\n`);
        const msg = await refused(['blockify', `oci:${std}:v1`, 'locked:1', '--preset', 'java'], EXIT.locked, new RegExp(`in use by process ${holder.pid}`), []);
        assert.match(msg, /\.index\.lock/);
        assert.equal(await readFile(lock(), 'utf8'), `${holder.pid}\n`, 'the holder keeps its lock');
      } finally {
        await holder.stop();
        await rm(lock(), { force: true });
      }
      const images = JSON.parse((await ok(['images', '--json'], env)).stdout).map((i: { name: string }) => i.name);
      assert.ok(!images.includes('locked:1'), images.join(','));
    });

    it('a lock left by a dead process is stale and taken over', async () => {
      await writeFile(lock(), `${await deadPid()}\n`);
      await ok(['blockify', `oci:${std}:v1`, 'stale:1', '--preset', 'java'], env);
      await assert.rejects(stat(lock()), 'the lock is released');
      const images = JSON.parse((await ok(['images', '--json'], env)).stdout).map((i: { name: string }) => i.name);
      assert.ok(images.includes('stale:1'), images.join(','));
      assert.deepEqual(await readdir(tmp), []);
    });
  });
});
