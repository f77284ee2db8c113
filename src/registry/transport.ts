import { isDigest, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { NAME_RE, TAG_RE } from '../oci/reference.js';
import type { Transport } from '../oci/transport.js';

/** docker://HOST[:PORT]/REPO[:TAG|@DIGEST]: an image in an OCI registry. */
export interface DockerRef {
  readonly transport: 'docker';
  readonly host: string;
  readonly repo: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * Parses docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST] as skopeo does: a first component with a dot,
 * a colon or "localhost" is the registry, else Docker Hub (library/ for one-part names); no tag
 * and no digest means :latest.
 */
export function parseDockerRef(s: string, rest: string): DockerRef {
  if (!rest.startsWith('//')) throw new BlockportError('EUSAGE', `${s}: want docker://HOST[:PORT]/REPO[:TAG|@sha256:...]`);
  let name = rest.slice(2);
  let digest: Digest | undefined;
  const at = name.indexOf('@');
  if (at !== -1) {
    const d = name.slice(at + 1);
    if (!isDigest(d)) throw new BlockportError('EUSAGE', `${s}: invalid digest ${JSON.stringify(d)} (want sha256:<64 hex>)`);
    digest = d;
    name = name.slice(0, at);
  }
  const colon = name.lastIndexOf(':');
  let tag: string | undefined;
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  const first = name.split('/')[0];
  const hasHost = name.includes('/') && (/[.:]/.test(first) || first === 'localhost' || first.startsWith('['));
  const host = hasHost ? first : 'docker.io';
  let repo = hasHost ? name.slice(first.length + 1) : name;
  if (host === 'docker.io' && !repo.includes('/')) repo = `library/${repo}`;
  if (!HOST_RE.test(host)) throw new BlockportError('EUSAGE', `${s}: invalid registry host ${JSON.stringify(host)}`);
  if (!NAME_RE.test(repo)) throw new BlockportError('EUSAGE', `${s}: invalid repository name ${JSON.stringify(repo)}`);
  if (tag !== undefined && !TAG_RE.test(tag)) throw new BlockportError('EUSAGE', `${s}: invalid tag ${JSON.stringify(tag)}`);
  if (tag !== undefined && digest) throw new BlockportError('EUSAGE', `${s}: name a tag or a digest, not both`);
  return { transport: 'docker', host, repo, ...(digest ? { digest } : { tag: tag ?? 'latest' }) };
}

/** The registry client (http, https, tls) is loaded when a docker:// image is opened, not before. */
const remote = () => import('./remote-image.js');

export const dockerTransport: Transport<DockerRef> = {
  name: 'docker',
  usage: 'docker://HOST[:PORT]/REPO[:TAG|@DIGEST]',
  description: 'an OCI registry (http for localhost and $BLOCKPORT_INSECURE_REGISTRIES; credentials from $BLOCKPORT_REGISTRY_AUTH=user:pass, auth.json or ~/.docker/config.json and its credential helpers; push, pull and copy also take --creds and --tls-verify)',
  // registries get gzip, as every registry user expects
  layerCompression: 'gzip',
  parse: (rest, text) => parseDockerRef(text, rest),
  format: (r) => `docker://${r.host}/${r.repo}${r.digest ? `@${r.digest}` : `:${r.tag}`}`,
  open: async (r, label, opts) => (await remote()).openRemoteImage(r, { label, platform: opts?.platform }),
  openWriter: async (r, label) => (await remote()).openRemoteWriter(r, { label }),
};
