import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlockportError } from '../errors.js';
import { basicAuth, fetchToken, findCredentials, parseChallenge, parseCreds, type Challenge, type Credentials } from './auth.js';

export interface ClientOptions {
  env?: NodeJS.ProcessEnv;
  /** Credentials to use before any other source (`--creds`). */
  creds?: Credentials;
  /** Plain http instead of https; default: loopback hosts and $BLOCKPORT_INSECURE_REGISTRIES. */
  insecure?: boolean;
  /** Attempts for a request that failed with 5xx, 429 or a reset connection (default 3). */
  tries?: number;
  /** First retry delay; each next one is four times longer (default 250 ms). */
  backoffMs?: number;
  fetch?: typeof fetch;
}

/**
 * A request body. Buffers and functions (which open a fresh stream per attempt) can be sent
 * again after a failure; a bare stream is sent once.
 */
export type Body = Buffer | (() => Readable) | Readable;

export interface RequestOptions {
  /** Token scopes the request needs, e.g. "repository:app:pull,push". */
  scopes?: string[];
  headers?: Record<string, string>;
  body?: Body;
  signal?: AbortSignal;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
/** Network failures worth another attempt (a refused connection is not: nobody is listening). */
const TRANSIENT = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT']);

/** What the command line sets for every registry a command speaks to (`--creds`, `--tls-verify=false`). */
const defaults: { creds?: Credentials; tlsVerify?: boolean } = {};

/** Sets `--creds USER:PASS` and `--tls-verify` for the registries of this process. */
export function configureRegistries(o: { creds?: string; tlsVerify?: boolean }): void {
  if (o.creds !== undefined) defaults.creds = parseCreds(o.creds, '--creds');
  if (o.tlsVerify !== undefined) defaults.tlsVerify = o.tlsVerify;
  clients.clear();
}

/** Whether `host` (HOST[:PORT]) is spoken to over plain http. */
export function isInsecure(host: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const bare = host.replace(/:\d+$/, '');
  if (LOOPBACK.has(bare) || defaults.tlsVerify === false) return true;
  const list = (env.BLOCKPORT_INSECURE_REGISTRIES ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return list.includes(host) || list.includes(bare);
}

/** The API host of a registry name: Docker Hub's name differs from its endpoint. */
function endpointHost(host: string): string {
  return host === 'docker.io' ? 'registry-1.docker.io' : host;
}

function networkCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } };
  return e?.cause?.code ?? e?.code;
}

/** The first error of a distribution error body, for messages: "MANIFEST_UNKNOWN: manifest unknown". */
export async function errorText(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const e = (JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
    if (e) return `${e.code ?? res.status}: ${e.message ?? ''}`.trim();
  } catch {
    // not JSON: fall through to the status line
  }
  return `${res.status} ${res.statusText}`.trim();
}

/**
 * Speaks the distribution HTTP API to one registry: pings /v2/ once, authenticates (anonymous,
 * basic, or bearer tokens per scope as the WWW-Authenticate challenge asks), and retries
 * replayable requests on 5xx, 429 and reset connections, at most `tries` times.
 */
export class RegistryClient {
  readonly base: string;
  private readonly doFetch: typeof fetch;
  private readonly tries: number;
  private readonly backoffMs: number;
  private ready?: Promise<void>;
  private challenge?: Challenge;
  private creds?: Credentials;
  private readonly tokens = new Map<string, Promise<string>>();
  /** Requests sent (each attempt counts), for tests and statistics. */
  requests = 0;

  constructor(
    readonly host: string,
    private readonly options: ClientOptions = {},
  ) {
    const insecure = options.insecure ?? isInsecure(host, options.env);
    this.base = `${insecure ? 'http' : 'https'}://${endpointHost(host)}`;
    this.doFetch = options.fetch ?? fetch;
    this.tries = Math.max(1, options.tries ?? 3);
    this.backoffMs = options.backoffMs ?? 250;
  }

  /** GET /v2/: checks the registry answers and learns how it wants to be authenticated. */
  ping(): Promise<void> {
    this.ready ??= (async () => {
      this.creds = await findCredentials(this.host, this.options.env, this.options.creds ?? defaults.creds);
      const res = await this.send('GET', '/v2/', {}, () => ({}));
      await res.body?.cancel();
      if (res.status === 401) this.challenge = parseChallenge(res.headers.get('www-authenticate'));
      else if (res.status === 404) throw new BlockportError('EIO', `${this.host}: not a container registry (GET /v2/ answered 404)`, { subject: this.host });
      else if (!res.ok) throw new BlockportError('EIO', `${this.host}: GET /v2/ answered ${res.status} ${res.statusText}`.trim(), { subject: this.host });
    })();
    return this.ready;
  }

  /** The Authorization header for `scopes`, fetching a token when the registry wants bearer auth. */
  private async authorization(scopes: string[]): Promise<Record<string, string>> {
    const c = this.challenge;
    if (!c) return {};
    if (c.scheme === 'basic') return this.creds ? { authorization: basicAuth(this.creds) } : {};
    const key = scopes.join(' ');
    let token = this.tokens.get(key);
    if (!token) {
      token = fetchToken(c, scopes, this.creds, (url, init) => this.doFetch(url, init));
      this.tokens.set(key, token);
      token.catch(() => this.tokens.delete(key));
    }
    return { authorization: `Bearer ${await token}` };
  }

  private unauthorized(res: Response, what: string): BlockportError {
    const hint = this.creds ? 'the registry refused the credentials' : 'authentication required (give --creds USER:PASS, set BLOCKPORT_REGISTRY_AUTH=user:password, or log in with docker login or podman login)';
    return new BlockportError('EIO', `${what}: ${res.status === 403 ? 'access denied' : 'unauthorized'} (${res.status}): ${hint}`, { subject: this.host });
  }

  /** One HTTP exchange, no retries; `auth` supplies the headers for this attempt. */
  private async send(method: string, pathOrUrl: string, o: RequestOptions, auth: () => Record<string, string>): Promise<Response> {
    const url = new URL(pathOrUrl, this.base);
    const b = o.body;
    const body = b === undefined ? undefined : Buffer.isBuffer(b) ? b : Readable.toWeb(typeof b === 'function' ? b() : b);
    this.requests++;
    try {
      const init = { method, headers: { ...o.headers, ...auth() }, body, signal: o.signal, duplex: 'half', redirect: 'follow' };
      return await this.doFetch(url, init as RequestInit);
    } catch (err) {
      if (o.signal?.aborted) throw err;
      const code = networkCode(err);
      const why = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
      const e = new BlockportError('EIO', `${this.host}: ${method} ${url.pathname}: cannot reach the registry (${why})`, { subject: this.host, cause: err });
      (e as { transient?: boolean }).transient = code !== undefined && TRANSIENT.has(code);
      throw e;
    }
  }

  /**
   * Sends a request and returns the response, whatever its status, except: 401/403 after
   * authenticating become an error, and 5xx/429/resets are retried while the body is replayable.
   * `what` names the operation in messages.
   */
  async request(method: string, pathOrUrl: string, o: RequestOptions = {}, what = `${this.host}`): Promise<Response> {
    await this.ping();
    const replayable = o.body === undefined || Buffer.isBuffer(o.body) || typeof o.body === 'function';
    let scopes = o.scopes ?? [];
    let reauthed = false;
    for (let attempt = 1; ; attempt++) {
      const headers = await this.authorization(scopes);
      let res: Response;
      try {
        res = await this.send(method, pathOrUrl, o, () => headers);
      } catch (err) {
        if (!(err as { transient?: boolean }).transient || !replayable || attempt >= this.tries) throw err;
        await sleep(this.backoffMs * 4 ** (attempt - 1));
        continue;
      }
      if (res.status === 401 && !reauthed) {
        // a new challenge (an expired token, a wider scope, auth only on some paths): authenticate again
        await res.body?.cancel();
        const c = parseChallenge(res.headers.get('www-authenticate'));
        if (!c || (c.scheme === 'basic' && !this.creds)) throw this.unauthorized(res, what);
        this.challenge = c;
        this.tokens.clear();
        if (c.params.scope && !scopes.includes(c.params.scope)) scopes = [...scopes, c.params.scope];
        reauthed = true;
        if (!replayable) {
          // a streamed body is gone; the caller may start over (a new upload session) with new tokens
          const e = this.unauthorized(res, what);
          (e as { transient?: boolean }).transient = c.scheme === 'bearer';
          throw e;
        }
        attempt--;
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        throw this.unauthorized(res, what);
      }
      if ((res.status >= 500 || res.status === 429) && replayable && attempt < this.tries) {
        await res.body?.cancel();
        await sleep(this.backoffMs * 4 ** (attempt - 1));
        continue;
      }
      return res;
    }
  }
}

/** The process's clients by host, so several images on one registry share tokens and pings. */
const clients = new Map<string, RegistryClient>();

/** A client for `host`, shared within the process. */
export function clientFor(host: string, options: ClientOptions = {}): RegistryClient {
  if (options.fetch || options.env || options.insecure !== undefined) return new RegistryClient(host, options);
  let c = clients.get(host);
  if (!c) clients.set(host, (c = new RegistryClient(host, options)));
  return c;
}
