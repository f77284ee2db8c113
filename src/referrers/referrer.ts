import { digestHex, type Digest } from '../digest/digest.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import type { Descriptor } from '../oci/types.js';

export { SOURCE_INDEX, SOURCE_MANIFEST, standsFor } from '../oci/referrer-entries.js';

/** The suffixes of cosign's tag scheme, in the order they are looked up. */
export const COSIGN_KINDS = ['sig', 'att', 'sbom'] as const;

/**
 * An artifact that refers to an image: an OCI 1.1 manifest whose `subject` names it, or a
 * manifest tagged by cosign's scheme `sha256-<hex>.sig|.att|.sbom`.
 */
export interface Referrer {
  /** The referrer's manifest (or index), bare, with its artifactType when it has one. */
  descriptor: Descriptor;
  /** The digest it refers to. */
  subject: Digest;
  /** Its cosign tag (`sha256-<hex>.sig`), when it was found by one; else it is an OCI 1.1 referrer. */
  tag?: string;
}

/** The blobs of a place, read verified: what copying a referrer needs besides listing it. */
export type BlobReads = Pick<ImageReader, 'readBlob' | 'openBlob'>;

/** A place referrers are read from (a layout, the store, a registry repository). */
export interface ReferrerSource extends BlobReads {
  readonly where: string;
  /** The referrers of `subject` held here, each once. */
  list(subject: Digest): Promise<Referrer[]>;
}

/** A place referrers are written to. */
export interface ReferrerSink {
  readonly where: string;
  /** A writer whose commit records `r` (its cosign tag, or its listing as a referrer of its subject). */
  writer(r: Referrer): Promise<ImageWriter>;
}

/** The cosign tag of kind `kind` for `subject`: `sha256-<hex>.sig`. */
export function cosignTag(subject: Digest, kind: (typeof COSIGN_KINDS)[number]): string {
  return `sha256-${digestHex(subject)}.${kind}`;
}

/** A referrer as bundle.json and messages name it. */
export function referrerLabel(r: Referrer): string {
  return r.tag ?? `${r.descriptor.artifactType ?? r.descriptor.mediaType} ${r.descriptor.digest}`;
}
