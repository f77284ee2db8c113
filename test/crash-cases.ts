/** The commands the crash harness interrupts, on the vendor scenario of bundle-helpers.ts. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { bpOk, type Scenario } from './bundle-helpers.js';
import type { CrashCase } from './crash-harness.js';

async function digestOf(home: string, name: string): Promise<string> {
  const images = JSON.parse((await bpOk(home, ['images', '--json'])).stdout);
  return images.find((i: { name: string }) => i.name === name)?.digest;
}

const sha = async (f: string) => createHash('sha256').update(await readFile(f)).digest('hex');

/** apply of a full bundle into a fresh store; the re-run resumes from what was staged. */
export function applyCase(s: Scenario, bundle: string, root: string): CrashCase {
  return {
    name: 'apply',
    prepare: async (i) => ({ home: join(root, `apply-${i}`), args: ['apply', bundle] }),
    check: async (home) => assert.equal(await digestOf(home, 'app:1'), await digestOf(s.vendor, 'app:1')),
  };
}

/** materialize from a store to a docker-archive; the re-run (--force: the kill may come after the rename) gives the same bytes. */
export function materializeCase(store: string, root: string): CrashCase {
  let reference: string | undefined;
  const out = (i: number) => join(root, `mat-${i}`, 'app-1.tar');
  return {
    name: 'materialize',
    prepare: async (i) => {
      if (i === 0) reference = await sha(out(-1));
      await mkdir(join(root, `mat-${i}`), { recursive: true });
      return { home: store, args: ['materialize', 'app:1', `docker-archive:${out(i)}:app:1`] };
    },
    rerun: (args) => [...args, '--force'],
    check: async (_home, i) => {
      assert.equal(await sha(out(i)), reference, 'the same bytes as an uninterrupted run');
      assert.deepEqual(await readdir(join(root, `mat-${i}`)), ['app-1.tar'], 'no temp file left beside it');
    },
  };
}

/** blockify into a fresh store; the re-run gives the image an uninterrupted blockify gives. */
export function blockifyCase(s: Scenario, root: string): CrashCase {
  return {
    name: 'blockify',
    prepare: async (i) => ({ home: join(root, `blockify-${i}`), args: ['blockify', `oci:${s.oci}:1`, 'app:1', '--preset', 'java'] }),
    check: async (home) => assert.equal(await digestOf(home, 'app:1'), await digestOf(s.vendor, 'app:1')),
  };
}

/** A store holding app:1 (applied), for the materialize case. */
export async function storeWithApp1(s: Scenario, bundle: string, root: string): Promise<string> {
  const home = join(root, 'mat-store');
  await bpOk(home, ['apply', bundle]);
  return home;
}
