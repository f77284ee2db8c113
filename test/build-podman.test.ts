/**
 * A built image runs: a tiny standard base (one static program, made here) plus build output
 * (a jar, a node_modules tree) built into block form, materialized, loaded into podman and run.
 * The program prints an environment variable and files given relative to the working folder, so
 * the run checks entrypoint, cmd, env, workdir and the bytes that came back from blocks. Skipped
 * only where this machine cannot run containers (checked by running the base first).
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ok } from './cli.js';
import { gnuTarLayer, makeTree, nodeModulesTree, run, skopeoCopy, tempDir, umociImage } from './fixtures/images.js';

const SHOW = `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  const char *g = getenv("GREETING");
  printf("%s\\n", g ? g : "no greeting");
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (!f) { printf("missing %s\\n", argv[i]); return 3; }
    int c; while ((c = fgetc(f)) != EOF) putchar(c);
    fclose(f);
  }
  return 0;
}
`;

let t: { dir: string; cleanup(): Promise<void> };
let skip: string | undefined;
let podmanEnv: NodeJS.ProcessEnv;

async function podman(args: string[]): Promise<string> {
  const base = ['--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', 'runc'];
  return (await run('podman', [...base, ...args], { env: { ...process.env, ...podmanEnv } })).stdout;
}

async function runImage(archive: string, name: string): Promise<string> {
  await podman(['load', '-i', archive]);
  return podman(['run', '--rm', '--network', 'none', '--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096', name]);
}

before(async () => {
  t = await tempDir('build-podman');
  const conf = join(t.dir, 'podman');
  await mkdir(conf);
  await writeFile(join(conf, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${conf}/root"\nrunroot = "${conf}/run"\n`);
  podmanEnv = { CONTAINERS_STORAGE_CONF: join(conf, 'storage.conf'), XDG_RUNTIME_DIR: join(conf, 'xdg') };
  try {
    await run('podman', ['--version']);
    await run('runc', ['--version']);
    await writeFile(join(t.dir, 'show.c'), SHOW);
    await mkdir(join(t.dir, 'base', 'bin'), { recursive: true });
    await run('gcc', ['-static', '-O2', join(t.dir, 'show.c'), '-o', join(t.dir, 'base', 'bin', 'show')]);
  } catch (err) {
    skip = `podman, runc or a static C toolchain is missing: ${(err as Error).message.split('\n')[0]}`;
  }
});
after(() => t.cleanup());

test('an image built from a jar and node_modules onto a tiny base materializes, loads into podman and runs', async (ctx) => {
  if (skip) return ctx.skip(skip);
  const layer = join(t.dir, 'base.tar');
  await gnuTarLayer(join(t.dir, 'base'), layer);
  const base = join(t.dir, 'base-oci');
  await umociImage(base, '1', [layer], { cmd: ['/bin/show'] });
  const baseArchive = join(t.dir, 'base-docker.tar');
  await skopeoCopy(`oci:${base}:1`, `docker-archive:${baseArchive}:localhost/base:1`);
  try {
    assert.equal((await runImage(baseArchive, 'localhost/base:1')).trim(), 'no greeting');
  } catch (err) {
    return ctx.skip(`this machine cannot run containers: ${(err as Error).message.split('\n').slice(-1)[0].slice(0, 200)}`);
  }

  const app = join(t.dir, 'app');
  const jarText = 'the bytes of a jar, back from a file block\n';
  await makeTree(app, [...nodeModulesTree({ packages: 3, seed: 4, fileSize: 2000 }), { path: 'lib/dep-1.0.jar', type: 'file', content: jarText }]);
  const env = { BLOCKPORT_HOME: join(t.dir, 'home') };
  const r = JSON.parse((await ok([
    'build', '--from', `oci:${base}:1`,
    '--layer', `deps=${app}/app/node_modules:/srv/node_modules,${app}/lib:/srv/lib`,
    '--add', `${app}/app/package.json:/srv/`,
    '--entrypoint', '/bin/show', '--cmd', '["lib/dep-1.0.jar","node_modules/pkg-1/package.json"]',
    '--env', 'GREETING=hello from a built image', '--workdir', '/srv', '--preset', 'java,node', '--tag', 'built/app:1', '--json',
  ], env)).stdout);
  assert.equal(r.layers[0].blocks, 1 + 3, 'the jar and three packages are blocks');
  const out = join(t.dir, 'app-docker.tar');
  await ok(['materialize', 'built/app:1', `docker-archive:${out}:localhost/app:1`], env);
  const printed = await runImage(out, 'localhost/app:1');
  const pkg = `${JSON.stringify({ name: 'pkg-1', version: '1.0.0', main: 'index.js' }, null, 2)}\n`;
  assert.equal(printed, `hello from a built image\n${jarText}${pkg}`);
});
