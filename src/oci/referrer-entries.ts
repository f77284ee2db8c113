import { isDigest, type Digest } from '../digest/digest.js';
import type { ImageReader } from './image.js';
import { Annotation } from './media-types.js';
import type { Descriptor } from './types.js';

/** On a block-form manifest made from a vendor image: the vendor manifest's digest. */
export const SOURCE_MANIFEST = Annotation.sourceManifest;
/** On a multi-platform block-form index: the vendor index's digest. */
export const SOURCE_INDEX = Annotation.sourceIndex;

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

/**
 * The digests an image stands for, whose referrers belong to it: what it is tagged as, its
 * manifest and index, and the vendor manifest and index a block-form image was made from.
 */
export function standsFor(img: Pick<ImageReader, 'top' | 'manifest' | 'manifestDescriptor' | 'index'>): Digest[] {
  const out = new Set<Digest>([img.top.digest, img.manifestDescriptor.digest]);
  if (img.index) out.add(img.index.descriptor.digest);
  for (const notes of [img.manifest.annotations, img.index?.index.annotations]) {
    for (const key of [SOURCE_MANIFEST, SOURCE_INDEX]) {
      const d = notes?.[key];
      if (isDigest(d)) out.add(d);
    }
  }
  return [...out];
}

/** The subject an index.json referrer entry names: its cosign tag's digest, or its marked subject. */
export function entrySubject(d: Descriptor): string | undefined {
  const name = d.annotations?.[Annotation.refName];
  const m = name === undefined ? null : COSIGN_TAG_RE.exec(tagPart(name));
  return m ? `sha256:${m[1]}` : d.annotations?.[REFERRER_SUBJECT];
}
