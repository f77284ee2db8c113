import { promises as fsp } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BlockportError } from '../errors.js';

/** A user name and password (or identity token) for one registry. */
export interface Credentials {
  username: string;
  password: string;
}

/** A parsed WWW-Authenticate challenge: `Basic realm=...` or `Bearer realm=...,service=...,scope=...`. */
export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/**
 * Parses the first challenge of a WWW-Authenticate header (RFC 7235 auth-params, quoted or not).
 * Registries send one; anything but Basic or Bearer is returned as undefined.
 */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  for (let p = re.exec(m[2]); p; p = re.exec(m[2])) params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  return { scheme, params };
}

/** The keys docker config.json may file a registry under. */
function configKeys(host: string): string[] {
  if (host === 'docker.io' || host === 'registry-1.docker.io') return ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', 'registry-1.docker.io'];
  return [host, `https://${host}`, `http://${host}`, `https://${host}/v1/`, `https://${host}/v2/`, `http://${host}/v1/`, `http://${host}/v2/`];
}

function decodeAuth(b64: string, where: string): Credentials {
  const text = Buffer.from(b64, 'base64').toString();
  const i = text.indexOf(':');
  if (i <= 0) throw new BlockportError('EUSAGE', `${where}: "auth" is not base64 of user:password`);
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

/** Credentials from a docker/podman auth file's `auths` section (credential helpers are not run). */
async function fromAuthFile(file: string, host: string): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let auths: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  try {
    auths = (JSON.parse(text) as { auths?: typeof auths }).auths ?? {};
  } catch {
    throw new BlockportError('EUSAGE', `${file}: invalid JSON`);
  }
  for (const key of configKeys(host)) {
    const a = auths[key];
    if (!a) continue;
    if (a.auth) return decodeAuth(a.auth, `${file}: auths["${key}"]`);
    if (a.username && a.password) return { username: a.username, password: a.password };
  }
  return undefined;
}

/**
 * The credentials to use for `host`: $BLOCKPORT_REGISTRY_AUTH ("user:pass") first, then the
 * `auths` of $DOCKER_CONFIG/config.json (default ~/.docker/config.json), then $REGISTRY_AUTH_FILE
 * (podman and skopeo's auth.json). Undefined means anonymous.
 */
export async function findCredentials(host: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const fromEnv = env.BLOCKPORT_REGISTRY_AUTH;
  if (fromEnv) {
    const i = fromEnv.indexOf(':');
    if (i <= 0) throw new BlockportError('EUSAGE', 'BLOCKPORT_REGISTRY_AUTH: want user:password');
    return { username: fromEnv.slice(0, i), password: fromEnv.slice(i + 1) };
  }
  const dockerDir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  const files = [join(dockerDir, 'config.json'), ...(env.REGISTRY_AUTH_FILE ? [env.REGISTRY_AUTH_FILE] : [])];
  for (const f of files) {
    const c = await fromAuthFile(f, host);
    if (c) return c;
  }
  return undefined;
}

export function basicAuth(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/**
 * Runs the distribution token flow: GET realm?service=..&scope=.. (with basic credentials when
 * there are some) and returns the bearer token. `scopes` are "repository:NAME:ACTIONS" strings.
 */
export async function fetchToken(
  challenge: Challenge,
  scopes: string[],
  creds: Credentials | undefined,
  doFetch: (url: string, init: RequestInit) => Promise<Response>,
): Promise<string> {
  const realm = challenge.params.realm;
  if (!realm) throw new BlockportError('EIO', 'registry sent a Bearer challenge without a realm');
  const url = new URL(realm);
  if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
  for (const s of scopes) url.searchParams.append('scope', s);
  const headers: Record<string, string> = creds ? { authorization: basicAuth(creds) } : {};
  const res = await doFetch(url.toString(), { headers });
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw new BlockportError('EIO', `${url.host}: ${creds ? 'credentials refused' : 'anonymous access refused'} by the token service (${res.status})`);
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new BlockportError('EIO', `${url.host}: token service answered ${res.status}`);
  }
  const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
  const token = body.token || body.access_token;
  if (!token) throw new BlockportError('EIO', `${url.host}: token service sent no token`);
  return token;
}
