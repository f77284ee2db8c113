/**
 * Listing referrers in a registry: the OCI 1.1 referrers API where the registry answers it, else
 * the referrers tag schema's index, and cosign's tags either way (a small http server speaking
 * just those paths).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { digestHex, sha256 } from '../digest/digest.js';
import { MediaType } from '../oci/media-types.js';
import { RegistryClient } from './client.js';
import { RegistryReferrers } from './referrers.js';
import { Repository } from './repository.js';

const subject = sha256('image');
const sbom = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: 'application/spdx+json', config: { mediaType: MediaType.ociEmpty, digest: sha256('{}'), size: 2 }, layers: [], subject: { mediaType: MediaType.ociManifest, digest: subject, size: 1 } }));
const sig = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: sha256('c'), size: 1 }, layers: [] }));
const listing = (d: Buffer) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: sha256(d), size: d.length, artifactType: 'application/spdx+json' }] }));

describe('registry referrers', () => {
  let server: Server;
  let host = '';
  let api = true;
  const asked: string[] = [];

  before(async () => {
    server = createServer((req, res) => {
      const url = req.url ?? '';
      asked.push(url);
      const send = (type: string, body: Buffer) => res.writeHead(200, { 'content-type': type, 'docker-content-digest': sha256(body), 'content-length': body.length }).end(body);
      if (url === '/v2/') return res.writeHead(200).end('{}');
      if (url === `/v2/app/referrers/${subject}` && api) return send(MediaType.ociIndex, listing(sbom));
      if (url === `/v2/app/manifests/sha256-${digestHex(subject)}` && !api) return send(MediaType.ociIndex, listing(sbom));
      if (url === `/v2/app/manifests/sha256-${digestHex(subject)}.sig`) return send(MediaType.ociManifest, sig);
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });

  after(() => new Promise<void>((r) => server.close(() => r())));

  const list = () => new RegistryReferrers(new Repository(new RegistryClient(host, { insecure: true }), 'app')).list(subject);

  it('reads the referrers API when the registry has it, and the cosign tags', async () => {
    api = true;
    asked.length = 0;
    const found = await list();
    assert.deepEqual(found.map((r) => [r.descriptor.digest, r.tag]), [[sha256(sbom), undefined], [sha256(sig), `sha256-${digestHex(subject)}.sig`]]);
    assert.equal(found[0].descriptor.artifactType, 'application/spdx+json');
    assert.ok(!asked.includes(`/v2/app/manifests/sha256-${digestHex(subject)}`), 'the tag schema is not asked when the API answers');
  });

  it('falls back to the referrers tag schema where the API is missing (distribution 2.x answers 404)', async () => {
    api = false;
    asked.length = 0;
    const found = await list();
    assert.deepEqual(found.map((r) => r.descriptor.digest), [sha256(sbom), sha256(sig)]);
    assert.ok(asked.includes(`/v2/app/manifests/sha256-${digestHex(subject)}`));
  });
});
