import assert from 'node:assert/strict';
import { test } from 'node:test';
import { accepts } from './registry-handler.js';
import { splitStoreName } from './store-catalog.js';

test('store names map to repository and tag; names a registry cannot serve are skipped', () => {
  assert.deepEqual(splitStoreName('team/app:1'), { repo: 'team/app', tag: '1' });
  assert.deepEqual(splitStoreName('app:v1.2-rc_3'), { repo: 'app', tag: 'v1.2-rc_3' });
  assert.equal(splitStoreName('registry.local:5000/team/app'), undefined, 'no tag: the colon is the port');
  assert.equal(splitStoreName('registry.local:5000/team/app:1'), undefined, 'a host with a port is no repository name');
  assert.equal(splitStoreName('App:1'), undefined);
  assert.equal(splitStoreName(':1'), undefined);
  assert.equal(splitStoreName('app'), undefined);
});

test('Accept: wildcards, the type itself, or no manifest type at all admit a manifest', () => {
  const oci = 'application/vnd.oci.image.manifest.v1+json';
  assert.ok(accepts(undefined, oci));
  assert.ok(accepts('*/*', oci));
  assert.ok(accepts(`application/vnd.docker.distribution.manifest.v2+json, ${oci};q=0.9`, oci));
  assert.ok(accepts('application/json', oci));
  assert.ok(!accepts('application/vnd.docker.distribution.manifest.v2+json', oci));
});
