/**
 * Every example under examples/ builds its two versions and writes the update bundle; the bundle
 * then updates a customer store holding version 1, and version 2 materializes there. Each example
 * runs in a copy, so the source tree stays clean.
 */
import assert from 'node:assert/strict';
import { cp, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { CLI, ok } from './cli.js';
import { run, tempDir } from './fixtures/images.js';

const EXAMPLES = fileURLToPath(new URL('../../examples', import.meta.url));

describe('examples', () => {
  let t: { dir: string; cleanup(): Promise<void> };
  before(async () => {
    t = await tempDir('examples');
    await cp(EXAMPLES, join(t.dir, 'examples'), { recursive: true, filter: (s) => !/\/(out|build|target)$/.test(s) });
  });
  after(() => t.cleanup());

  for (const [name, image] of [['maven-app', 'example/maven-app'], ['npm-app', 'example/npm-app'], ['python-app', 'example/python-app']]) {
    it(`${name}: builds v1 and v2, and its bundle updates a store holding v1`, async () => {
      const dir = join(t.dir, 'examples', name);
      const vendor = { BLOCKPORT_HOME: join(t.dir, `${name}-vendor`) };
      await run('bash', [join(dir, 'build.sh')], { env: { ...process.env, ...vendor, BLOCKPORT: `${process.execPath} ${CLI}` } });
      const bundle = join(dir, 'out', `${name}-2.bpk`);
      const size = (await stat(bundle)).size;
      const customer = { BLOCKPORT_HOME: join(t.dir, `${name}-customer`) };
      const v1 = join(t.dir, `${name}-1.bpk`);
      await ok(['bundle', '--to', `${image}:1`, '-o', v1], vendor);
      await ok(['apply', v1], customer);
      await ok(['apply', bundle], customer);
      await ok(['materialize', `${image}:2`, `oci:${join(t.dir, `${name}-std`)}:2`], customer);
      // the update carries the changed dependency, not all of them
      assert.ok(size < (await stat(v1)).size / 2, `update ${size} bytes vs full ${(await stat(v1)).size}`);
    });
  }
});
