import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromSystemError } from './errors.js';

const sys = (code: string, path?: string, dest?: string) => Object.assign(new Error(`${code}: some syscall, open '${path}'`), { code, path, dest });

test('system errors become one line naming the file, never its temp name or the raw errno text', () => {
  const full = fromSystemError(sys('ENOSPC'), '/out/.app.tar.tmp-123-0badf00d');
  assert.equal(full.message, 'no space left on device while writing /out/app.tar');
  assert.equal(full.exitCode, 10);
  const dir = fromSystemError(sys('EISDIR', '/x/y'), '/x/y');
  assert.equal(dir.message, '/x/y: is a directory (a file is expected there)');
  const notDir = fromSystemError(sys('ENOTDIR', '/f/.x.tar.tmp-9-abcdef01'), '/f/x.tar');
  assert.equal(notDir.message, '/f/x.tar: a part of this path is a file, not a directory');
  const other = fromSystemError(sys('EMLINK', '/a'), '/a');
  assert.equal(other.message, '/a: some syscall (/a)');
  assert.doesNotMatch(other.message, /EMLINK/);
});
