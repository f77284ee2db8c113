import { promises as fsp } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { BlockportError } from '../errors.js';
import { Store } from '../store/store.js';
import { LayerCache } from './layer-cache.js';
import { RegistryError, sendError } from './registry-error.js';
import { RegistryHandler, type Exchange } from './registry-handler.js';
import { ServeStats, type ServeSummary } from './serve-stats.js';
import { StoreCatalog } from './store-catalog.js';

export interface ServeOptions {
  /** The store's folder ($BLOCKPORT_HOME). */
  home: string;
  host: string;
  port: number;
  /** Where spliced layers are kept; default `<home>/serve-cache`. */
  cacheDir?: string;
  /** One line per request (default: stderr). */
  log?: (line: string) => void;
  /** How long in-flight responses may run on after stop() before they are cut (default 2 s). */
  drainMs?: number;
}

/** A running registry over the store. */
export interface RunningServer {
  /** http://HOST:PORT, with the port actually bound (for port 0). */
  url: string;
  host: string;
  port: number;
  cacheDir: string;
  catalog: StoreCatalog;
  /** Stops accepting, lets in-flight responses finish (briefly), cancels splices; returns what was moved. */
  stop(): Promise<ServeSummary>;
}

/** Hosts that only this machine reaches. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new BlockportError('EIO', `cannot listen on ${host}:${port}: ${why}`, { cause: err }));
    });
    server.listen(port, host.replace(/^\[(.*)\]$/, '$1'), () => resolve(server.address() as AddressInfo));
  });
}

/** The request's path and query; a target that is no path (`*`, `//x`) becomes one that matches no route. */
function requestUrl(target: string | undefined): URL {
  try {
    return new URL(target?.startsWith('/') && !target.startsWith('//') ? target : '/-', 'http://serve.invalid');
  } catch {
    return new URL('/-', 'http://serve.invalid');
  }
}

/** One log line: time, method, path, status, body bytes, milliseconds, where a layer came from, and why it failed. */
function logLine(x: Exchange, ms: number): string {
  const cut = x.res.writableFinished ? '' : ' (cut short)';
  const from = x.origin ? ` ${x.origin}` : '';
  const why = x.error && (x.res.statusCode >= 500 || cut) ? ` ${x.error}` : '';
  return `${new Date().toISOString()} ${x.req.method} ${(x.req.url ?? '').slice(0, 300)} ${x.res.statusCode} ${x.sent} ${ms.toFixed(1)}ms${from}${cut}${why}`;
}

/** Starts serving the store read-only over the OCI distribution API. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const store = new Store(opts.home);
  const layout = store.layout;
  // a broken store fails here, not at the first request; a store not made yet serves nothing until it is
  if (await fsp.stat(join(opts.home, 'index.json')).catch(() => undefined)) await layout.readIndex();
  const cacheDir = opts.cacheDir ?? join(opts.home, 'serve-cache');
  const cache = new LayerCache(cacheDir, layout.blobs);
  await cache.removeStaleTemps();
  const catalog = new StoreCatalog(store);
  const stats = new ServeStats();
  const handler = new RegistryHandler(catalog, cache, stats);
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const inFlight = new Set<Promise<void>>();

  const server = createServer((req, res) => {
    const t0 = process.hrtime.bigint();
    stats.requests++;
    const x: Exchange = { req, res, url: requestUrl(req.url), sent: 0 };
    const done = new Promise<void>((resolve) => {
      res.on('close', () => {
        log(logLine(x, Number(process.hrtime.bigint() - t0) / 1e6));
        resolve();
      });
    });
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
    if (stopping) {
      // a request on a kept-alive connection after stop(): no new work, the client retries elsewhere
      res.shouldKeepAlive = false;
      x.sent += sendError(res, new RegistryError(503, 'UNAVAILABLE', 'the server is stopping'), req.method === 'HEAD');
      return;
    }
    void handler.handle(x);
  });
  // a silent client must not hold a connection for long; responses (large layers) have no limit
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  const addr = await listen(server, opts.host, opts.port);
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let stopping: Promise<ServeSummary> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await cache.close(); // splices in progress stop and remove their temp files; their readers fail
      const drained = Promise.all([...inFlight]);
      const timer = new Promise<void>((resolve) => setTimeout(resolve, opts.drainMs ?? 2000).unref());
      await Promise.race([drained, timer]);
      server.closeAllConnections();
      await closed;
      return stats.summary(cache.spliced);
    })());
  return { url: `http://${host}:${addr.port}`, host, port: addr.port, cacheDir, catalog, stop };
}
