import type { Descriptor } from './types.js';
import { Annotation } from './media-types.js';

/**
 * On an index.json entry of a layout (or the store): the digest of the image the entry refers to,
 * for an OCI 1.1 referrer kept untagged (a signature, an SBOM). Readers that do not know it see an
 * ordinary untagged manifest, as OCI layouts hold them.
 */
export const REFERRER_SUBJECT = 'io.blockport.referrer.subject';

/** cosign's tag scheme: `sha256-<hex>.sig`, `.att`, `.sbom` name what refers to `sha256:<hex>`. */
export const COSIGN_TAG_RE = /^sha256-([0-9a-f]{64})\.(sig|att|sbom)$/;

/** The tag part of a ref name: a layout's `TAG`, the store's `NAME:TAG`. */
export function tagPart(refName: string): string {
  return refName.slice(refName.lastIndexOf(':') + 1);
}

/** Whether an index.json entry is a referrer (cosign tag or untagged OCI 1.1 referrer), not an image of its own. */
export function isReferrerEntry(d: Descriptor): boolean {
  const name = d.annotations?.[Annotation.refName];
  return Boolean(d.annotations?.[REFERRER_SUBJECT]) || (name !== undefined && COSIGN_TAG_RE.test(tagPart(name)));
}
