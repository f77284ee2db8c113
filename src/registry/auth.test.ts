import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { formatRef, parseRef } from '../index.js';
import { findCredentials, parseChallenge } from './auth.js';
import { isInsecure } from './client.js';
import { TaskPool } from './pool.js';
import { childTag } from './remote-writer.js';

const isCode = (code: string) => (err: unknown) => err instanceof BlockportError && err.code === code;

describe('WWW-Authenticate challenges', () => {
  it('parses a bearer challenge with quoted parameters', () => {
    const c = parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:team/app:pull,push' } });
  });

  it('parses basic, unquoted values and escapes; refuses other schemes', () => {
    assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
    assert.deepEqual(parseChallenge('bearer realm=http://x/t, service=x, error="insufficient_scope"')?.params, { realm: 'http://x/t', service: 'x', error: 'insufficient_scope' });
    assert.equal(parseChallenge('Bearer realm="a\\"b"')?.params.realm, 'a"b');
    assert.equal(parseChallenge('Negotiate abc'), undefined);
    assert.equal(parseChallenge(null), undefined);
  });
});

describe('credentials', () => {
  it('prefers BLOCKPORT_REGISTRY_AUTH, then docker config.json auths', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blockport-auth-'));
    try {
      const auth = Buffer.from('alice:s3cr:et').toString('base64');
      await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'https://reg.example.com:5000': { auth }, 'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') } } }));
      const env = { DOCKER_CONFIG: dir };
      assert.deepEqual(await findCredentials('reg.example.com:5000', env), { username: 'alice', password: 's3cr:et' });
      assert.deepEqual(await findCredentials('docker.io', env), { username: 'hub', password: 'pw' });
      assert.equal(await findCredentials('other.example.com', env), undefined);
      assert.deepEqual(await findCredentials('reg.example.com:5000', { ...env, BLOCKPORT_REGISTRY_AUTH: 'bob:pw' }), { username: 'bob', password: 'pw' });
      await assert.rejects(findCredentials('x', { BLOCKPORT_REGISTRY_AUTH: 'nocolon' }), isCode('EUSAGE'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads REGISTRY_AUTH_FILE, then $XDG_RUNTIME_DIR/containers/auth.json, then docker config.json; --creds wins', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blockport-auth-'));
    try {
      const b64 = (s: string) => Buffer.from(s).toString('base64');
      await mkdir(join(dir, 'xdg', 'containers'), { recursive: true });
      await writeFile(join(dir, 'xdg', 'containers', 'auth.json'), JSON.stringify({ auths: { 'reg:5000': { auth: b64('xdg:pw') }, 'only-xdg': { auth: b64('x:1') } } }));
      await writeFile(join(dir, 'podman.json'), JSON.stringify({ auths: { 'reg:5000': { auth: b64('podman:pw') } } }));
      await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'reg:5000': { auth: b64('docker:pw') } } }));
      const env = { DOCKER_CONFIG: dir, XDG_RUNTIME_DIR: join(dir, 'xdg') };
      assert.equal((await findCredentials('reg:5000', env))?.username, 'xdg');
      assert.equal((await findCredentials('reg:5000', { ...env, REGISTRY_AUTH_FILE: join(dir, 'podman.json') }))?.username, 'podman');
      assert.equal((await findCredentials('reg:5000', { DOCKER_CONFIG: dir }))?.username, 'docker');
      assert.equal((await findCredentials('only-xdg', env))?.username, 'x');
      assert.equal((await findCredentials('reg:5000', env, { username: 'cli', password: 'p' }))?.username, 'cli');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('runs credHelpers and credsStore helpers (docker-credential-NAME get, the host on stdin)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'blockport-auth-'));
    try {
      const helper = (name: string, user: string) =>
        writeFile(join(dir, `docker-credential-${name}`), `#!/bin/sh\n[ "$1" = get ] || exit 2\nread host\ncase "$host" in\n  *.example.com) echo '{"Username":"${user}","Secret":"'"s-$host"'"}' ;;\n  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n`, { mode: 0o755 });
      await helper('per-host', 'per-host');
      await helper('store', 'store');
      await writeFile(join(dir, 'config.json'), JSON.stringify({ credHelpers: { 'a.example.com': 'per-host' }, credsStore: 'store', auths: { 'c.example.com': { auth: Buffer.from('inline:pw').toString('base64') } } }));
      const env = { DOCKER_CONFIG: dir, PATH: `${dir}:${process.env.PATH}` };
      assert.deepEqual(await findCredentials('a.example.com', env), { username: 'per-host', password: 's-a.example.com' });
      assert.deepEqual(await findCredentials('b.example.com', env), { username: 'store', password: 's-b.example.com' });
      assert.equal((await findCredentials('c.example.com', env))?.username, 'inline', 'auths before credsStore');
      assert.equal(await findCredentials('other.org', env), undefined, 'the helper knows nothing: anonymous');
      await assert.rejects(findCredentials('a.example.com', { DOCKER_CONFIG: dir, PATH: '/nonexistent' }), isCode('ETOOL'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('anonymous when there is no config at all', async () => {
    assert.equal(await findCredentials('127.0.0.1:5000', { DOCKER_CONFIG: join(tmpdir(), 'blockport-no-such-dir') }), undefined);
  });
});

describe('docker:// references', () => {
  const d = sha256('x');

  it('parses host, port, nested repository, tag or digest', () => {
    assert.deepEqual(parseRef('docker://127.0.0.1:5000/team/app:1'), { transport: 'docker', host: '127.0.0.1:5000', repo: 'team/app', tag: '1' });
    assert.deepEqual(parseRef(`docker://localhost/app@${d}`), { transport: 'docker', host: 'localhost', repo: 'app', digest: d });
    assert.deepEqual(parseRef('docker://reg.example.com/app'), { transport: 'docker', host: 'reg.example.com', repo: 'app', tag: 'latest' });
  });

  it('defaults to Docker Hub like skopeo', () => {
    assert.deepEqual(parseRef('docker://alpine:3'), { transport: 'docker', host: 'docker.io', repo: 'library/alpine', tag: '3' });
    assert.deepEqual(parseRef('docker://team/app:1'), { transport: 'docker', host: 'docker.io', repo: 'team/app', tag: '1' });
  });

  it('formats back to what it parsed', () => {
    for (const s of ['docker://127.0.0.1:5000/team/app:1', `docker://localhost/app@${d}`]) assert.equal(formatRef(parseRef(s)), s);
  });

  it('refuses malformed references as usage errors', () => {
    for (const s of ['docker:127.0.0.1/app:1', 'docker://127.0.0.1:5000/App:1', 'docker://127.0.0.1:5000/app:bad/tag', 'docker://h:1/app@sha256:abc', `docker://h:1/app:1@${d}`, 'docker://bad_host:1/app:1']) {
      assert.throws(() => parseRef(s), isCode('EUSAGE'), s);
    }
  });
});

describe('transport security', () => {
  it('speaks plain http to loopback and to listed registries only', () => {
    assert.equal(isInsecure('127.0.0.1:5000', {}), true);
    assert.equal(isInsecure('localhost', {}), true);
    assert.equal(isInsecure('reg.example.com', {}), false);
    assert.equal(isInsecure('reg.example.com:5000', { BLOCKPORT_INSECURE_REGISTRIES: 'other:1, reg.example.com:5000' }), true);
    assert.equal(isInsecure('reg.example.com:5001', { BLOCKPORT_INSECURE_REGISTRIES: 'reg.example.com:5000' }), false);
  });
});

describe('child tags', () => {
  it('derive from the tag and stay within 128 characters', () => {
    assert.equal(childTag('1', 0), '1.blockport-0');
    const long = childTag('t'.repeat(128), 12);
    assert.equal(long.length, 128);
    assert.ok(long.endsWith('.blockport-12'));
  });
});

describe('TaskPool', () => {
  it('runs at most `limit` tasks at once and waits for all', async () => {
    const pool = new TaskPool(3, 2);
    let running = 0;
    let peak = 0;
    let done = 0;
    for (let i = 0; i < 20; i++) {
      await pool.add(async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(2);
        running--;
        done++;
      });
    }
    await pool.drain();
    assert.equal(done, 20);
    assert.equal(peak, 3);
  });

  it('reports the first failure from add and drain, and skips tasks not started', async () => {
    const pool = new TaskPool(1, 0);
    let ran = 0;
    await pool.add(async () => {
      await sleep(5);
      throw new Error('boom');
    });
    await assert.rejects(pool.add(async () => void ran++), /boom/);
    await assert.rejects(pool.drain(), /boom/);
    assert.equal(ran, 0);
  });
});
