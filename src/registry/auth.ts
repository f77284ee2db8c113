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

type AuthFile = {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
};

async function readAuthFile(file: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as AuthFile;
  } catch {
    throw new BlockportError('EUSAGE', `${file}: invalid JSON`);
  }
}

/**
 * Runs `docker-credential-NAME get` with the registry on stdin, as docker does. Its answer is
 * `{"Username": ..., "Secret": ...}`; a helper that knows no credentials for the host exits non-zero
 * ("credentials not found"), which means anonymous.
 */
export async function fromHelper(name: string, host: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  const tool = `docker-credential-${name}`;
  const { spawn } = await import('node:child_process');
  const child = spawn(tool, ['get'], { stdio: ['pipe', 'pipe', 'pipe'], env });
  const out: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.resume();
  child.stdin.on('error', () => {}); // a helper that exits before reading
  child.stdin.end(host);
  const code = await new Promise<number | string>((resolve) => {
    child.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    child.once('close', (c) => resolve(c ?? 1));
  });
  if (code === 'ENOENT') throw new BlockportError('ETOOL', `${tool} (the credential helper configured for ${host}) is not installed`, { subject: tool });
  if (code !== 0) return undefined;
  try {
    const j = JSON.parse(Buffer.concat(out).toString()) as { Username?: string; Secret?: string };
    return j.Secret ? { username: j.Username ?? '', password: j.Secret } : undefined;
  } catch {
    throw new BlockportError('ETOOL', `${tool} get: answered something that is not JSON`, { subject: tool });
  }
}

/** Credentials for `host` from one auth file: its `credHelpers`, `auths`, then `credsStore`. */
async function fromAuthFile(file: string, host: string, env: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  const f = await readAuthFile(file);
  if (!f) return undefined;
  const keys = configKeys(host);
  const helper = keys.map((k) => f.credHelpers?.[k]).find(Boolean);
  if (helper) return fromHelper(helper, host, env);
  for (const key of keys) {
    const a = f.auths?.[key];
    if (!a) continue;
    if (a.auth) return decodeAuth(a.auth, `${file}: auths["${key}"]`);
    if (a.username && a.password) return { username: a.username, password: a.password };
  }
  return f.credsStore ? fromHelper(f.credsStore, host, env) : undefined;
}

/** Splits "user:password" (the password may hold colons). */
export function parseCreds(s: string, what: string): Credentials {
  const i = s.indexOf(':');
  if (i <= 0) throw new BlockportError('EUSAGE', `${what}: want user:password`);
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}

/** The auth files consulted, in order: podman's and skopeo's, then docker's. */
export function authFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME || homedir();
  return [
    ...(env.REGISTRY_AUTH_FILE ? [env.REGISTRY_AUTH_FILE] : []),
    ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json')] : []),
    join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json'),
  ];
}

/**
 * The credentials to use for `host`: `explicit` (`--creds`), then $BLOCKPORT_REGISTRY_AUTH
 * ("user:pass"), then the first auth file that knows the host: $REGISTRY_AUTH_FILE,
 * $XDG_RUNTIME_DIR/containers/auth.json, $DOCKER_CONFIG/config.json (default ~/.docker), each
 * by its `credHelpers`, `auths` or `credsStore`. Undefined means anonymous.
 */
export async function findCredentials(host: string, env: NodeJS.ProcessEnv = process.env, explicit?: Credentials): Promise<Credentials | undefined> {
  if (explicit) return explicit;
  if (env.BLOCKPORT_REGISTRY_AUTH) return parseCreds(env.BLOCKPORT_REGISTRY_AUTH, 'BLOCKPORT_REGISTRY_AUTH');
  for (const f of authFiles(env)) {
    const c = await fromAuthFile(f, host, env);
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
