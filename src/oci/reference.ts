import { homedir } from 'node:os';
import { join } from 'node:path';
import { isDigest, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';

/** Where an image lives, parsed from a skopeo-style transport reference. */
export type ImageRef =
  | { transport: 'oci'; dir: string; tag?: string }
  | { transport: 'oci-archive'; file: string; tag?: string }
  | { transport: 'docker-archive'; file: string; name?: string }
  | { transport: 'store'; name: string }
  | { transport: 'docker'; host: string; repo: string; tag?: string; digest?: Digest };

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const NAME_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** Splits "PATH[:REST]" at the first colon, as skopeo does for oci: and docker-archive:. */
function splitPath(s: string): [string, string | undefined] {
  const i = s.indexOf(':');
  return i === -1 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/** Validates a store or archive name "NAME:TAG" (registry host prefixes allowed). */
export function checkNameTag(s: string, what: string): string {
  const i = s.lastIndexOf(':');
  const name = i > s.lastIndexOf('/') && i !== -1 ? s.slice(0, i) : s;
  const tag = i > s.lastIndexOf('/') && i !== -1 ? s.slice(i + 1) : '';
  const host = name.includes('/') && /[.:]|^localhost$/.test(name.split('/')[0]) ? name.split('/')[0] : '';
  const path = host ? name.slice(host.length + 1) : name;
  if (!tag || !TAG_RE.test(tag) || !NAME_RE.test(path)) {
    throw new BlockportError('EUSAGE', `${what}: invalid image name ${JSON.stringify(s)} (want NAME:TAG, e.g. app:1)`);
  }
  return s;
}

export function parseRef(s: string): ImageRef {
  const i = s.indexOf(':');
  const transport = i === -1 ? '' : s.slice(0, i);
  const rest = s.slice(i + 1);
  switch (transport) {
    case 'oci': {
      const [dir, tag] = splitPath(rest);
      if (!dir) throw new BlockportError('EUSAGE', `${s}: missing directory (want oci:DIR[:TAG])`);
      if (tag !== undefined && !TAG_RE.test(tag)) throw new BlockportError('EUSAGE', `${s}: invalid tag ${JSON.stringify(tag)}`);
      return { transport: 'oci', dir, tag };
    }
    case 'oci-archive': {
      const [file, tag] = splitPath(rest);
      if (!file) throw new BlockportError('EUSAGE', `${s}: missing file (want oci-archive:FILE[:TAG])`);
      if (tag !== undefined && !TAG_RE.test(tag)) throw new BlockportError('EUSAGE', `${s}: invalid tag ${JSON.stringify(tag)}`);
      return { transport: 'oci-archive', file, tag };
    }
    case 'docker-archive': {
      const [file, name] = splitPath(rest);
      if (!file) throw new BlockportError('EUSAGE', `${s}: missing file (want docker-archive:FILE[:NAME:TAG])`);
      return { transport: 'docker-archive', file, name: name === undefined ? undefined : checkNameTag(name, s) };
    }
    case 'docker':
      return parseDockerRef(s, rest);
    case 'containers-storage':
    case 'dir':
      throw new BlockportError('EUNSUPPORTED', `${s}: transport ${transport}: is not supported yet (use oci:, oci-archive:, docker-archive: or a store NAME:TAG)`);
    default:
      return { transport: 'store', name: checkNameTag(s, 'store reference') };
  }
}

export function formatRef(r: ImageRef): string {
  switch (r.transport) {
    case 'oci':
      return `oci:${r.dir}${r.tag ? `:${r.tag}` : ''}`;
    case 'oci-archive':
      return `oci-archive:${r.file}${r.tag ? `:${r.tag}` : ''}`;
    case 'docker-archive':
      return `docker-archive:${r.file}${r.name ? `:${r.name}` : ''}`;
    case 'store':
      return r.name;
    case 'docker':
      return `docker://${r.host}/${r.repo}${r.digest ? `@${r.digest}` : `:${r.tag}`}`;
  }
}

const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * Parses docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST] as skopeo does: a first component with a dot,
 * a colon or "localhost" is the registry, else Docker Hub (library/ for one-part names); no tag
 * and no digest means :latest.
 */
function parseDockerRef(s: string, rest: string): ImageRef {
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

/** The local store's folder: $BLOCKPORT_HOME, else $XDG_DATA_HOME/blockport, else ~/.local/share/blockport. */
export function storeHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BLOCKPORT_HOME) return env.BLOCKPORT_HOME;
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'blockport');
}
