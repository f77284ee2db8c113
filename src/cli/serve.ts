import { resolve } from 'node:path';
import type { Command } from 'commander';
import { BlockportError } from '../errors.js';
import { storeHome } from '../store/store.js';
import type { ServeSummary } from '../serve/serve-stats.js';
import { action, makeContext, type CliContext } from './context.js';
import { humanSize } from './format.js';

interface ServeFlags {
  listen: string;
  cache?: string;
  allowRemote?: boolean;
  json?: boolean;
}

/** HOST:PORT, [V6]:PORT, :PORT or PORT; the host defaults to 127.0.0.1. */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:(\[[0-9A-Fa-f:.]+\]|[^:[\]]*):)?(\d{1,5})$/.exec(s.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new BlockportError('EUSAGE', `--listen ${JSON.stringify(s)}: want HOST:PORT, e.g. 127.0.0.1:5000`);
  return { host: m[1] || '127.0.0.1', port };
}

/** Serves until SIGINT or SIGTERM, then returns what was moved. */
export async function serveCommand(flags: ServeFlags, ctx: CliContext): Promise<ServeSummary & { url: string }> {
  const { host, port } = parseListen(flags.listen);
  const { startServer, isLoopback } = await import('../serve/registry-server.js');
  if (!isLoopback(host) && !flags.allowRemote) {
    throw new BlockportError('EUSAGE', `--listen ${host}: other machines could pull every image of the store, over plain http; pass --allow-remote if that is meant`);
  }
  const server = await startServer({ home: storeHome(), host, port, cacheDir: flags.cache === undefined ? undefined : resolve(flags.cache) });
  // with --json, stdout carries only the summary: what is served goes to stderr then
  const say = ctx.json ? (line: string) => process.stderr.write(`${line}\n`) : ctx.say;
  const repos = await server.catalog.repositories();
  say(`blockport serve: ${server.url} (read-only; store ${storeHome()}, layer cache ${server.cacheDir})`);
  for (const [repo, tags] of [...repos].sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const [tag, top] of tags) {
      const img = await server.catalog.image(repo, tag, top).catch((err: Error) => err);
      const what = img instanceof Error ? `not served: ${img.message}` : img.blockForm ? `block form, served as its standard image ${img.top.digest}` : `standard, served as stored ${img.top.digest}`;
      say(`  ${server.url.replace(/^http:\/\//, '')}/${repo}:${tag}  ${what}`);
    }
  }
  if (repos.size === 0) say('  (the store holds no images yet; tags added later are served as they appear)');
  say('logging one line per request to stderr; Ctrl-C stops');
  // a second Ctrl-C finds no handler and ends the process at once (the next start removes its temp files)
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  return { url: server.url, ...(await server.stop()) };
}

export function printServe(r: Awaited<ReturnType<typeof serveCommand>>, ctx: CliContext): void {
  ctx.say(`stopped: ${r.requests} requests; ${r.manifests} image pulls got ${r.moved.blobs} blobs (${humanSize(r.moved.bytes)}), where plain copies of those images move ${r.plainCopy.blobs} blobs (${humanSize(r.plainCopy.bytes)}); ${r.spliced.layers} layers (${humanSize(r.spliced.bytes)}) spliced into the cache`);
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve the store read-only as an OCI registry for local runtimes (block-form images as their standard images)')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:5000')
    .option('--cache <dir>', 'where spliced standard layers are kept (default $BLOCKPORT_HOME/serve-cache)')
    .option('--allow-remote', 'allow listening on an address other machines reach (plain http, no auth)')
    .option('--json', 'print the summary at stop as JSON')
    .addHelpText('after', `
Block-form images are served as their standard images: same config and diff_ids; layers that
are in block form are spliced on their first request, verified, kept in the cache and served
uncompressed (their digest is the diff_id, so unchanged layers of an upgrade keep theirs); the
other layers as stored. Standard images are served as stored. Store image team/app:1 is
repository team/app, tag 1. One log line per request on stderr; SIGINT/SIGTERM stop it and print
what was sent against what plain copies of the pulled images move.

Examples:
  blockport serve                                   # http://127.0.0.1:5000
  skopeo copy --src-tls-verify=false docker://127.0.0.1:5000/team/app:1 oci:./app:1
  podman pull --tls-verify=false 127.0.0.1:5000/team/app:1
  docker pull 127.0.0.1:5000/team/app:1
  ctr images pull --plain-http 127.0.0.1:5000/team/app:1
  blockport serve --listen 127.0.0.1:0 --cache /var/cache/blockport   # a free port, printed at start`)
    .action(action((flags: ServeFlags) => serveCommand(flags, makeContext(Boolean(flags.json))), printServe));
}
