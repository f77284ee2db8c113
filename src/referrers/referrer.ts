import { digestHex, isDigest, type Digest } from '../digest/digest.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import type { Descriptor } from '../oci/types.js';

/** On a block-form manifest made from a vendor image: the vendor manifest's digest. */
export const SOURCE_MANIFEST = 'io.blockport.source.manifest';
/** On a multi-platform block-form index: the vendor index's digest. */
export const SOURCE_INDEX = 'io.blockport.source.index';

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

/** A referrer as bundle.json and messages name it. */
export function referrerLabel(r: Referrer): string {
  return r.tag ?? `${r.descriptor.artifactType ?? r.descriptor.mediaType} ${r.descriptor.digest}`;
}
