// The `node` scenario: a service on Debian's nodejs whose node_modules comes from `npm install`
// of two releases of its package.json (v2 bumps a few dependencies).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { BuildContext } from './context.js';
import { BASE_PACKAGES, baseLayer, debLayer, linkNode } from './debian-layers.js';
import { run } from './exec.js';
import type { PlannedImage } from './java.js';
import { buildLayer, type BuiltLayer } from './layer.js';

/** Popular packages with real dependency trees, at exact versions. */
export const NODE_DEPS_V1: Record<string, string> = {
  '@babel/core': '7.24.5',
  axios: '1.6.8',
  commander: '12.0.0',
  dayjs: '1.11.11',
  dotenv: '16.4.5',
  express: '4.18.2',
  lodash: '4.17.21',
  pino: '9.0.0',
  react: '18.2.0',
  'react-dom': '18.2.0',
  rxjs: '7.8.1',
  typescript: '5.4.5',
  uuid: '9.0.1',
  webpack: '5.91.0',
  ws: '8.17.0',
  zod: '3.23.8',
};

/** v2: a handful of bumps (one of them, typescript, a large package). */
export const NODE_DEPS_V2: Record<string, string> = { ...NODE_DEPS_V1, axios: '1.7.2', express: '4.19.2', pino: '9.2.0', typescript: '5.5.4' };

/** The node images, in build order. */
export async function planNode(ctx: BuildContext): Promise<PlannedImage[]> {
  const dir = join(ctx.out, 'node', 'layers');
  await fsp.mkdir(dir, { recursive: true });
  // The same base layer as the Java images (same recipe, same file).
  const base = await baseLayer(ctx);
  const runtime = await debLayer(ctx, dir, 'nodejs', { below: BASE_PACKAGES, wanted: ['nodejs'], describe: 'apt-get install nodejs', after: { key: 'node-link', apply: linkNode } });
  const images: PlannedImage[] = [];
  const releases = [
    { version: 'v1', app: '1.0.0', deps: NODE_DEPS_V1 },
    { version: 'v2', app: '1.1.0', deps: NODE_DEPS_V2 },
  ];
  // Both npm installs at once: they are mostly waiting on the network and the disk.
  const modules = await Promise.all(releases.map((r) => modulesLayer(ctx, dir, `modules-${r.version}`, r.app, r.deps)));
  for (const [i, r] of releases.entries()) {
    const app = await nodeAppLayer(dir, `app-${r.version}`, r.app);
    const changes = r.version === 'v1' ? ['first release'] : [
      `package.json: ${bumps(NODE_DEPS_V1, r.deps).join(', ')} (node_modules reinstalled)`,
      `app ${releases[0].app} -> ${r.app}`,
    ];
    images.push({
      tag: `node-${r.version}`, scenario: 'node', version: r.version, layers: [base.layer, runtime.layer, modules[i], app], changes,
      config: {
        env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'NODE_ENV=production'],
        cmd: ['node', '/app/server.js'], workingDir: '/app',
        labels: { 'org.opencontainers.image.title': 'shop-api', 'org.opencontainers.image.version': r.app },
      },
    });
  }
  return images;
}

/** /app/package.json, package-lock.json and node_modules from `npm install --ignore-scripts`. */
async function modulesLayer(ctx: BuildContext, dir: string, name: string, version: string, deps: Record<string, string>): Promise<BuiltLayer> {
  const pkg = { name: 'shop-api', version, private: true, main: 'server.js', dependencies: deps };
  const npmArgs = ['--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error', '--cache', join(ctx.cache, 'npm'), '--prefer-offline'];
  // The first resolution is kept in the lock, so that later builds install the very same tree.
  const locked = await ctx.lock.remember(`npm-lock ${JSON.stringify(deps)}`, () => {
    ctx.log(`  ${name}: npm install --package-lock-only`);
    return resolveTree(dir, pkg, npmArgs);
  });
  return buildLayer(dir, name, { pkg, locked }, async (stage) => {
    ctx.log(`  ${name}: npm ci`);
    const app = join(stage, 'app');
    await fsp.mkdir(app, { recursive: true });
    await fsp.writeFile(join(app, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
    await fsp.writeFile(join(app, 'package-lock.json'), JSON.stringify(locked, null, 2) + '\n');
    await run('npm', ['ci', ...npmArgs], { cwd: app, timeoutMs: 15 * 60_000 });
    const count = (await fsp.readdir(join(app, 'node_modules'))).length;
    return `npm install (${Object.keys(deps).length} dependencies, ${count} top-level entries in node_modules)`;
  });
}

/** The package-lock.json `npm install --package-lock-only` writes for `pkg`. */
async function resolveTree(dir: string, pkg: object, npmArgs: string[]): Promise<unknown> {
  const tmp = await fsp.mkdtemp(join(dir, '.npm-resolve-'));
  try {
    await fsp.writeFile(join(tmp, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
    await run('npm', ['install', '--package-lock-only', ...npmArgs], { cwd: tmp, timeoutMs: 15 * 60_000 });
    return JSON.parse(await fsp.readFile(join(tmp, 'package-lock.json'), 'utf8')) as unknown;
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

async function nodeAppLayer(dir: string, name: string, version: string): Promise<BuiltLayer> {
  return buildLayer(dir, name, { version }, async (stage) => {
    const app = join(stage, 'app');
    await fsp.mkdir(join(app, 'config'), { recursive: true });
    await fsp.writeFile(join(app, 'server.js'), serverSource(version));
    await fsp.writeFile(join(app, 'config', 'default.json'), JSON.stringify({ port: 3000, version, cacheSeconds: version === '1.0.0' ? 30 : 60 }, null, 2) + '\n');
    return `shop-api ${version}: server.js and config`;
  });
}

function bumps(from: Record<string, string>, to: Record<string, string>): string[] {
  return Object.keys(to).filter((k) => from[k] !== to[k]).map((k) => `${k} ${from[k]} -> ${to[k]}`);
}

function serverSource(version: string): string {
  return `'use strict';
// shop-api ${version}
const express = require('express');
const pino = require('pino');
const { z } = require('zod');
const config = require('./config/default.json');

const log = pino();
const app = express();
const Order = z.object({ id: z.string(), qty: z.number().int().positive() });

app.get('/health', (_req, res) => res.json({ ok: true, version: config.version }));
app.post('/orders', express.json(), (req, res) => {
  const parsed = Order.safeParse(req.body);
  if (!parsed.success) return res.status(400).json(parsed.error.issues);
  res.status(201).json(parsed.data);
});

if (process.argv.includes('--version')) console.log(config.version);
else app.listen(config.port, () => log.info({ port: config.port }, 'shop-api ${version} listening'));
`;
}
