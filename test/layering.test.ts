import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The layers of src/, lowest first (README "Layout of the code"): a file may import files of its
 * own layer and of the layers below it, never above. Names are folders, or files at src/'s root.
 */
const LAYERS: string[][] = [
  ['errors.ts', 'chunk.ts'],
  ['digest'],
  ['tar', 'zip'],
  ['cas'],
  ['oci'],
  ['store'],
  ['fidelity'],
  ['referrers'],
  ['blocks'],
  ['bundle'],
  ['registry'],
  ['serve', 'build'],
  ['transports.ts'],
  ['cli', 'index.ts'],
];

const here = dirname(fileURLToPath(import.meta.url));
// compiled to dist/test/: the sources sit two folders up
const SRC = join(here, '..', '..', 'src');

function layerOf(path: string): number {
  // imports name the compiled .js file of a .ts source
  const top = relative(SRC, path).split(sep)[0].replace(/\.js$/, '.ts');
  const i = LAYERS.findIndex((l) => l.includes(top));
  if (i === -1) throw new Error(`${relative(SRC, path)}: its folder ${top} is in no layer; add it to LAYERS and the README`);
  return i;
}

async function* sources(dir: string): AsyncGenerator<string> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) yield p;
  }
}

test('each folder of src/ imports only its own layer and the layers below it', async () => {
  const wrong: string[] = [];
  let files = 0;
  for await (const file of sources(SRC)) {
    files++;
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|^import\s+)'(\.{1,2}\/[^']+)'/gm)) {
      const target = normalize(join(dirname(file), m[1]));
      if (layerOf(target) > layerOf(file)) wrong.push(`${relative(SRC, file)} imports ${relative(SRC, target)}`);
    }
  }
  assert.ok(files > 50, `read ${files} files of ${SRC}`);
  assert.deepEqual(wrong, []);
});

test('the layering rule catches an upward import', () => {
  assert.ok(layerOf(join(SRC, 'oci', 'x.ts')) < layerOf(join(SRC, 'registry', 'y.ts')));
  assert.throws(() => layerOf(join(SRC, 'nowhere', 'z.ts')), /in no layer/);
});

test('npm pack ships the library and the CLI, and no test files', async () => {
  const { execFile } = await import('node:child_process');
  const out = await new Promise<string>((resolve, reject) =>
    execFile('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: join(SRC, '..'), maxBuffer: 64 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path);
  assert.ok(files.includes('dist/src/cli/main.js') && files.includes('dist/src/index.js'), 'the CLI and the library are packed');
  assert.deepEqual(files.filter((f) => /\.test\.|(^|\/)test\//.test(f)), []);
});
