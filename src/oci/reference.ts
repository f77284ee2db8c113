/** Grammar every transport's references share: tags, repository names, PATH:REST splits. */
import { BlockportError } from '../errors.js';

export const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const NAME_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** Splits "PATH[:REST]" at the first colon, as skopeo does for oci: and docker-archive:. */
export function splitPath(s: string): [string, string | undefined] {
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
