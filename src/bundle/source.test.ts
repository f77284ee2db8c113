import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockportError } from '../errors.js';
import '../transports.js';
import { parseTarget } from './source.js';

test('--to names: store names as they are, archives by their name, NAME:TAG=REF explicitly', () => {
  assert.equal(parseTarget('app:2').name, 'app:2');
  assert.equal(parseTarget('registry.example.com/team/app:2').name, 'registry.example.com/team/app:2');
  assert.equal(parseTarget('docker-archive:/tmp/x.tar:app:3').name, 'app:3');
  assert.equal(parseTarget('oci:/build/app:2').name, 'app:2');
  assert.equal(parseTarget('oci-archive:/build/svc.tar:7').name, 'svc:7');
  const explicit = parseTarget('team/app:2=oci:/build/out:latest');
  assert.equal(explicit.name, 'team/app:2');
  assert.deepEqual(explicit.ref, { transport: 'oci', dir: '/build/out', tag: 'latest' });
  // '=' inside a path is not a name
  assert.deepEqual(parseTarget('oci:/a=b/app:1').ref, { transport: 'oci', dir: '/a=b/app', tag: '1' });
});

test('a reference without a usable name asks for NAME:TAG=REF', () => {
  assert.throws(() => parseTarget('oci:/build/Out_Dir'), (e: unknown) => e instanceof BlockportError && e.code === 'EUSAGE' && /--to NAME:TAG=oci:/.test(e.message));
});
