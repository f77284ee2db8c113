import type { Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { parseJson } from '../oci/json.js';
import { LayoutImageWriter, type OciLayout } from '../oci/layout.js';
import { Annotation, isImageManifest, isIndex } from '../oci/media-types.js';
import { COSIGN_TAG_RE, REFERRER_SUBJECT, tagPart } from '../oci/referrer-entries.js';
import { bareDescriptor } from '../oci/resolve.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import { COSIGN_KINDS, cosignTag, type BlobReads, type Referrer, type ReferrerSink, type ReferrerSource } from './referrer.js';

/** Manifests larger than this are not read to look for a subject (registries refuse them anyway). */
const MAX_MANIFEST = 4 << 20;

/**
 * The referrers an OCI layout (or the store) holds: entries tagged by cosign's scheme (a layout's
 * `sha256-<hex>.sig`, the store's `NAME:sha256-<hex>.sig`), and manifests whose `subject` names the
 * digest (blockport marks those it lists; others are read, as OCI layouts keep them unmarked).
 */
export class LayoutReferrers implements ReferrerSource {
  readonly where: string;
  /** Subjects of manifests read once: a lookup per digest an image stands for reads each entry once in all. */
  private readonly subjects = new Map<string, string | undefined>();

  constructor(
    readonly layout: OciLayout,
    private readonly blobs: BlobReads,
  ) {
    this.where = layout.root;
  }

  readBlob(d: Descriptor) {
    return this.blobs.readBlob(d);
  }

  openBlob(d: Descriptor) {
    return this.blobs.openBlob(d);
  }

  async list(subject: Digest): Promise<Referrer[]> {
    const out = new Map<string, Referrer>();
    const tags = new Set(COSIGN_KINDS.map((k) => cosignTag(subject, k)));
    for (const entry of (await this.layout.readIndex()).manifests) {
      const name = entry.annotations?.[Annotation.refName];
      const tag = name === undefined ? undefined : tagPart(name);
      const descriptor = bareDescriptor(entry);
      if (tag !== undefined && tags.has(tag)) out.set(`${tag} ${entry.digest}`, { descriptor, subject, tag });
      else if (entry.annotations?.[REFERRER_SUBJECT] === subject || (await this.subjectOf(entry)) === subject) out.set(entry.digest, { descriptor, subject });
    }
    return [...out.values()];
  }

  /** The subject an unmarked, untagged-by-cosign manifest names, read when it is small. */
  private async subjectOf(entry: Descriptor): Promise<string | undefined> {
    if (entry.annotations?.[REFERRER_SUBJECT] || (!isImageManifest(entry) && !isIndex(entry)) || entry.size > MAX_MANIFEST) return undefined;
    const name = entry.annotations?.[Annotation.refName];
    if (name !== undefined && COSIGN_TAG_RE.test(tagPart(name))) return undefined;
    if (this.subjects.has(entry.digest)) return this.subjects.get(entry.digest);
    const bytes = await this.layout.readBlob(entry).catch((err) => {
      if (err instanceof BlockportError && (err.code === 'ENOTFOUND' || err.code === 'EMISSING')) return undefined;
      throw err;
    });
    const subject = bytes && parseJson<ImageManifest>(bytes, `${this.where}: ${entry.digest}`)?.subject?.digest;
    this.subjects.set(entry.digest, subject);
    return subject;
  }
}

/**
 * Writes referrers into a layout: a cosign-tagged one under its tag (prefixed with `repo:` in the
 * store, whose tags are NAME:TAG), an OCI 1.1 one listed untagged with its subject.
 */
export class LayoutReferrerSink implements ReferrerSink {
  readonly where: string;

  constructor(
    readonly layout: OciLayout,
    /** The store repository the image is tagged in; undefined for an oci: layout. */
    private readonly repo?: string,
  ) {
    this.where = layout.root;
  }

  async writer(r: Referrer): Promise<LayoutImageWriter> {
    await this.layout.init();
    const tag = r.tag === undefined ? undefined : this.repo ? `${this.repo}:${r.tag}` : r.tag;
    return new LayoutImageWriter(`${this.where}: ${r.tag ?? r.descriptor.digest}`, this.layout, tag, r.subject);
  }
}
