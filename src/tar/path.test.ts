import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockportError } from '../errors.js';
import { cleanPath, isWithin, resolveLink } from './path.js';

const unsafe = (subject: string) => (e: unknown) => e instanceof BlockportError && e.code === 'EUNSAFE' && e.subject === subject;

describe('cleanPath', () => {
  it('gives what splitting on "/" gives for every name made of "a", ".", "..", "/" and NUL parts (clean names take a shortcut)', () => {
    const bySplit = (name: string): string | 'refused' => {
      if (name.includes('\0')) return 'refused';
      const parts = name.split('/').filter((p) => p !== '' && p !== '.');
      return parts.includes('..') ? 'refused' : parts.join('/');
    };
    const atoms = ['a', 'b.c', '.', '..', '/', '...', '.x', 'x.', '\0'];
    let names = [''];
    for (let len = 0; len < 4; len++) names = [...names, ...names.flatMap((n) => atoms.map((a) => n + a))];
    let refused = 0;
    for (const name of new Set(names)) {
      let got: string;
      try {
        got = cleanPath(name);
      } catch (e) {
        assert.ok(e instanceof BlockportError && e.code === 'EUNSAFE', String(e));
        got = 'refused';
        refused++;
      }
      assert.equal(got, bySplit(name), JSON.stringify(name));
    }
    assert.ok(refused > 100, `${refused} names refused`);
  });

  it('strips leading "/" and "./", empty and "." parts, and trailing slashes', () => {
    const cases: [string, string][] = [
      ['usr/bin/x', 'usr/bin/x'],
      ['/usr/bin/x', 'usr/bin/x'],
      ['./usr/bin/x', 'usr/bin/x'],
      ['.//usr//./bin/./x/', 'usr/bin/x'],
      ['///etc/', 'etc'],
      ['./', ''],
      ['.', ''],
      ['/', ''],
      ['', ''],
      ['ünïcödé/日本語 😀', 'ünïcödé/日本語 😀'],
      ['...', '...'],
      ['..a/b..', '..a/b..'],
      ['a\\..\\b', 'a\\..\\b'], // a backslash is an ordinary byte in a Linux name
      ['.wh..wh..opq', '.wh..wh..opq'],
    ];
    for (const [name, want] of cases) assert.equal(cleanPath(name), want, JSON.stringify(name));
  });

  it('refuses any ".." component, even one that would stay inside, with EUNSAFE naming the path', () => {
    for (const name of ['..', '../etc/passwd', '/../etc', 'a/..', 'a/../b', './a/b/../../..', 'a/b/..//c']) {
      assert.throws(() => cleanPath(name), unsafe(name), name);
    }
  });

  it('refuses NUL bytes', () => {
    assert.throws(() => cleanPath('a\0b'), unsafe('a\0b'));
    assert.throws(() => cleanPath('\0'), unsafe('\0'));
  });

  it('names what it was checking in the message', () => {
    assert.throws(() => cleanPath('../x', 'layer sha256:abc'), (e: unknown) => e instanceof BlockportError && e.message.startsWith('layer sha256:abc:'));
  });
});

describe('resolveLink', () => {
  it('resolves relative targets from the link folder and absolute ones from the root', () => {
    const cases: [string, string, string | null][] = [
      ['usr/bin', 'python3', 'usr/bin/python3'],
      ['usr/bin', '../lib/x', 'usr/lib/x'],
      ['usr/bin', './../../etc/x', 'etc/x'],
      ['usr/bin', '/etc/alternatives/java', 'etc/alternatives/java'],
      ['', 'a/./b//c/', 'a/b/c'],
      ['a', '..', ''],
      ['a', '/', ''],
      ['a', 'b/../../c', 'c'],
      ['a', 'ünï/日本', 'a/ünï/日本'],
    ];
    for (const [dir, target, want] of cases) assert.equal(resolveLink(dir, target), want, `${dir} -> ${target}`);
  });

  it('returns null for a target that leaves the root at any step', () => {
    const cases: [string, string][] = [
      ['', '../x'],
      ['', '..'],
      ['a', '../..'],
      ['a/b', '../../../etc/passwd'],
      ['a', 'b/../../..'],
      ['a', '../../a/x'], // comes back in, but went out on the way
      ['usr/bin', '/../etc/passwd'], // a runtime would clamp at "/"; blockport refuses
    ];
    for (const [dir, target] of cases) assert.equal(resolveLink(dir, target), null, `${dir} -> ${target}`);
  });

  it('never yields a path outside the root (random targets against a reference walk)', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const parts = ['a', 'b', '..', '.', '', 'c'];
    const gen = (k: number) => Array.from({ length: k }, () => parts[rnd(parts.length)]).join('/');
    for (let i = 0; i < 2000; i++) {
      const dir = cleanPath(gen(rnd(4)).replace(/\.\./g, 'x'));
      const target = `${rnd(4) === 0 ? '/' : ''}${gen(1 + rnd(6))}`;
      const stack: string[] = [];
      let escaped = false;
      for (const p of (target.startsWith('/') ? target : `${dir}/${target}`).split('/')) {
        if (p === '' || p === '.') continue;
        if (p !== '..') stack.push(p);
        else if (stack.length === 0) escaped = true;
        else stack.pop();
      }
      const got = resolveLink(dir, target);
      assert.equal(got, escaped ? null : stack.join('/'), `${dir} -> ${target}`);
      if (got !== null) assert.ok(!got.split('/').includes('..') && !got.startsWith('/'), got);
    }
  });
});

describe('isWithin', () => {
  it('is true for the folder itself and below it, never for a sibling with the same prefix', () => {
    assert.equal(isWithin('a/b', 'a'), true);
    assert.equal(isWithin('a', 'a'), true);
    assert.equal(isWithin('anything', ''), true);
    assert.equal(isWithin('ab', 'a'), false);
    assert.equal(isWithin('a', 'a/b'), false);
    assert.equal(isWithin('usr/lib64', 'usr/lib'), false);
  });
});
