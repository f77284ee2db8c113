// Stands in for `npm ci --omit=dev`: writes node_modules/ (plain, scoped and nested packages,
// a .bin link) and the app's own files for version 1 or 2. Version 2 bumps one dependency.
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { classBytes, fresh, writeTree } from '../lib/files.mjs';

const version = Number(process.argv[2] ?? 1);
const here = new URL('.', import.meta.url).pathname;
const build = join(here, 'build');
fresh(build);

/** A package folder: package.json, an entry point and some library code (hex text, like minified JS). */
function pkg(dir, name, v, size) {
  const code = classBytes(`${name}@${v}`, size).toString('hex');
  writeTree(join(build, dir), {
    'package.json': `${JSON.stringify({ name, version: v, main: 'index.js', license: 'MIT' }, null, 2)}\n`,
    'index.js': `module.exports = require('./lib/${name.split('/').pop()}.js');\n`,
    [`lib/${name.split('/').pop()}.js`]: `module.exports = ${JSON.stringify(code)};\n`,
    'README.md': `# ${name}\n\nVersion ${v}.\n`,
  });
}

const deps = {
  express: '4.19.2',
  lodash: version === 1 ? '4.17.20' : '4.17.21',
  debug: '4.3.4',
  '@types/node': '20.12.7',
  '@aws-sdk/client-s3': '3.569.0',
  uuid: '9.0.1',
};
for (const [name, v] of Object.entries(deps)) pkg(`node_modules/${name}`, name, v, 40_000 + name.length * 5_000);
// a nested copy: debug needs another ms than the top-level one
pkg('node_modules/ms', 'ms', '2.1.3', 8_000);
pkg('node_modules/debug/node_modules/ms', 'ms', '2.1.2', 8_000);
mkdirSync(join(build, 'node_modules/.bin'), { recursive: true });
symlinkSync('../uuid/index.js', join(build, 'node_modules/.bin/uuid'));
writeTree(build, {
  'package.json': `${JSON.stringify({ name: 'npm-app', version: `${version}.0.0`, main: 'index.js', dependencies: deps }, null, 2)}\n`,
  'index.js': `const _ = require('lodash');\nconsole.log('npm-app ${version}', typeof _);\n`,
});
console.log(`build/ for version ${version}: ${Object.keys(deps).length + 2} packages`);
