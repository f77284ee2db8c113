import { isDigest, parseDigest, digestHex, type Digest } from '../digest/digest.js';
import { checkSize } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import { parseJson } from '../oci/json.js';
import { checkNameTag } from '../oci/reference.js';
import { COSIGN_TAG_RE } from '../oci/referrer-entries.js';
import { checkDescriptor } from '../oci/resolve.js';
import type { Descriptor } from '../oci/types.js';

/** Media type of the bundle manifest (`bundle.json`). */
export const BUNDLE_MEDIA_TYPE = 'application/vnd.blockport.bundle.v1+json';
export const BUNDLE_VERSION = 1;
/** The first member of every bundle. */
export const MANIFEST_MEMBER = 'bundle.json';
/** The optional second member: an Ed25519 signature over the exact bytes of `bundle.json`. */
export const SIGNATURE_MEMBER = 'bundle.json.sig';
/** bundle.json and its signature are small; anything larger is refused before parsing. */
export const MAX_MANIFEST = 64 << 20;
export const MAX_SIGNATURE = 64 << 10;

/**
 * How a blob's bytes are stored in the bundle: as is, zstd frames, or a delta against a base the
 * receiver holds: a zstd patch, or VCDIFF (xdelta3) for pairs too big for zstd's memory; or a
 * recipe: literals and byte ranges copied from blobs the receiver holds (src/bundle/recipe.ts);
 * or a zip delta: a zip rebuilt entry by entry against the old zip it replaces (src/bundle/delta-zip.ts).
 */
export type BlobEncoding = 'none' | 'zstd' | 'zstd-patch' | 'vcdiff' | 'recipe' | 'zip-delta';

/** The encodings that are deltas: decoded against a `base` the receiver holds. */
export type DeltaEncoding = 'zstd-patch' | 'vcdiff' | 'zip-delta';

/** Whether an encoding is a delta (needs a base). */
export function isDelta(e: BlobEncoding): e is DeltaEncoding {
  return e === 'zstd-patch' || e === 'vcdiff' || e === 'zip-delta';
}

/** An image the bundle tags in the receiver's store. */
export interface BundleTarget {
  /** Store name, NAME:TAG. */
  name: string;
  /** What the tag points to: the image index (block form) or manifest, as in the sender's store. */
  descriptor: Descriptor;
  /**
   * Orders the releases of this tag (spec 14.2): a receiver refuses a bundle whose release of a
   * tag is older than the one it applied last (rollback protection). Absent in older bundles.
   */
  release?: number;
}

/**
 * A signature, SBOM or attestation that travels with a target (spec 14.11): a manifest of the
 * bundle's blobs the receiver lists beside the target, tagged by cosign's scheme or kept as an
 * OCI 1.1 referrer of `subject`.
 */
export interface BundleReferrer {
  /** The target (its NAME:TAG) whose image it refers to. */
  target: string;
  /** The digest it refers to: one the target's image stands for. */
  subject: Digest;
  /** Its manifest (or index). */
  descriptor: Descriptor;
  /** Its cosign tag, `sha256-<hex of subject>.sig|.att|.sbom`, when it has one. */
  tag?: string;
}

/** An image the sender assumed the receiver holds (`--since`): named in a missing-prerequisite error. */
export interface BundleSince {
  /** Store NAME:TAG, when the sender named it so. */
  name?: string;
  digest: Digest;
}

/** A blob the receiver must already hold for the bundle to apply. */
export interface BundlePrerequisite {
  digest: Digest;
  size: number;
}

/** A blob carried in the bundle, in member order. */
export interface BundleBlob {
  digest: Digest;
  size: number;
  mediaType: string;
  encoding: BlobEncoding;
  /** Bytes of the member (equals `size` when encoding is none). */
  storedSize: number;
  /** For a delta (`zstd-patch`, `vcdiff`, `zip-delta`): the blob the patch applies to; always one of the prerequisites. */
  base?: BundlePrerequisite;
  /** For a `recipe`: the blobs its COPY ops read, by index; every one is a prerequisite. */
  bases?: BundlePrerequisite[];
}

/** The bundle manifest: everything a receiver needs to decide, verify and apply. */
export interface BundleManifest {
  mediaType: typeof BUNDLE_MEDIA_TYPE;
  version: typeof BUNDLE_VERSION;
  /** When the bundle was written (RFC 3339, UTC); informative. */
  created?: string;
  targets: BundleTarget[];
  prerequisites: BundlePrerequisite[];
  blobs: BundleBlob[];
  /** The images the prerequisites come from, as far as the sender knew them. */
  since?: BundleSince[];
  /** Signatures, SBOMs and attestations of the targets (absent when none travel; older receivers ignore it). */
  referrers?: BundleReferrer[];
}

/** `bundle.json.sig`: who signed and the signature, base64. */
export interface BundleSignature {
  algorithm: 'ed25519';
  /** sha256 of the signer's public key (SPKI DER): tells which trusted key to try. */
  keyId: Digest;
  signature: string;
}

const SUFFIX: Record<BlobEncoding, string> = { none: '', zstd: '.zst', 'zstd-patch': '.zst-patch', vcdiff: '.vcdiff', recipe: '.recipe', 'zip-delta': '.zip-delta' };

/** The tar member name of a blob: OCI layout path, `.zst` when compressed, `.zst-patch` or `.vcdiff` for a delta. */
export function blobMember(b: Pick<BundleBlob, 'digest' | 'encoding'>): string {
  return `blobs/sha256/${digestHex(b.digest)}${SUFFIX[b.encoding]}`;
}

function fail(where: string, what: string): never {
  throw new BlockportError('ECORRUPT', `${where}: ${what}`);
}

function checkBlob(x: unknown, where: string): BundleBlob {
  const b = x as BundleBlob;
  if (!b || typeof b !== 'object' || typeof b.mediaType !== 'string') fail(where, 'invalid blob entry');
  parseDigest(b.digest, where);
  checkSize(b.size, where);
  checkSize(b.storedSize, where);
  if (!Object.hasOwn(SUFFIX, b.encoding)) fail(where, `unknown encoding ${JSON.stringify(b.encoding)}`);
  if (b.encoding === 'none' && b.storedSize !== b.size) fail(where, 'storedSize differs from size for an unencoded blob');
  const out: BundleBlob = { digest: b.digest, size: b.size, mediaType: b.mediaType, encoding: b.encoding, storedSize: b.storedSize };
  if (b.encoding === 'recipe') return { ...out, bases: checkRecipeBases(b, where) };
  if (!isDelta(b.encoding)) return out;
  if (!b.base || typeof b.base !== 'object') fail(where, `a ${b.encoding} blob names no base`);
  out.base = { digest: parseDigest(b.base.digest, `${where}: base`), size: checkSize(b.base.size, `${where}: base`) };
  if (out.base.digest === b.digest) fail(where, 'a blob cannot be its own base');
  return out;
}

/** A recipe's bases: at least one, none twice, never the blob itself. */
function checkRecipeBases(b: BundleBlob, where: string): BundlePrerequisite[] {
  if (!Array.isArray(b.bases) || b.bases.length === 0) fail(where, 'a recipe blob names no bases');
  const bases = b.bases.map((x, i) => ({ digest: parseDigest(x?.digest, `${where}: bases[${i}]`), size: checkSize(x.size, `${where}: bases[${i}]`) }));
  if (new Set(bases.map((x) => x.digest)).size !== bases.length) fail(where, 'a recipe names a base twice');
  if (bases.some((x) => x.digest === b.digest)) fail(where, 'a blob cannot be its own base');
  return bases;
}

/** Every delta's base must be a prerequisite, so apply checks it is held before writing anything. */
function checkBases(blobs: BundleBlob[], prerequisites: BundlePrerequisite[], where: string): void {
  const held = new Map(prerequisites.map((p) => [p.digest, p.size]));
  for (const b of blobs) {
    if (b.base && held.get(b.base.digest) !== b.base.size) fail(where, `the base ${b.base.digest} of ${b.digest} is not among the prerequisites`);
    for (const x of b.bases ?? []) if (held.get(x.digest) !== x.size) fail(where, `the base ${x.digest} of ${b.digest} is not among the prerequisites`);
  }
}

/** Parses and checks `bundle.json`: version, every digest and size, unique blobs, valid names. */
export function parseBundleManifest(bytes: Buffer, where = MANIFEST_MEMBER): BundleManifest {
  const m = parseJson<BundleManifest>(bytes, where);
  if (!m || typeof m !== 'object') fail(where, 'not a JSON object');
  if (m.mediaType !== BUNDLE_MEDIA_TYPE) fail(where, `not a blockport bundle manifest (mediaType ${JSON.stringify(m.mediaType)})`);
  if (m.version !== BUNDLE_VERSION) {
    throw new BlockportError('EUNSUPPORTED', `${where}: bundle version ${JSON.stringify(m.version)} is not supported (this blockport reads version ${BUNDLE_VERSION})`);
  }
  if (!Array.isArray(m.targets) || !Array.isArray(m.prerequisites) || !Array.isArray(m.blobs)) fail(where, 'targets, prerequisites and blobs must be arrays');
  const targets = m.targets.map((t, i) => {
    if (!t || typeof t.name !== 'string') fail(where, `targets[${i}]: missing name`);
    try {
      checkNameTag(t.name, `${where}: targets[${i}]`);
    } catch {
      fail(where, `targets[${i}]: invalid image name ${JSON.stringify(t.name)}`);
    }
    const out: BundleTarget = { name: t.name, descriptor: checkDescriptor(t.descriptor, `${where}: targets[${i}]`) };
    if (t.release !== undefined) out.release = checkRelease(t.release, `${where}: targets[${i}]`);
    return out;
  });
  const prerequisites = m.prerequisites.map((p, i) => ({ digest: parseDigest(p?.digest, `${where}: prerequisites[${i}]`), size: checkSize(p.size, `${where}: prerequisites[${i}]`) }));
  const blobs = m.blobs.map((b, i) => checkBlob(b, `${where}: blobs[${i}]`));
  const seen = new Set<string>();
  for (const d of [...blobs.map((b) => b.digest), ...prerequisites.map((p) => p.digest)]) {
    if (seen.has(d)) fail(where, `${d} is listed twice`);
    seen.add(d);
  }
  checkBases(blobs, prerequisites, where);
  const out: BundleManifest = { mediaType: BUNDLE_MEDIA_TYPE, version: BUNDLE_VERSION, targets, prerequisites, blobs };
  if (typeof m.created === 'string') out.created = m.created;
  if (Array.isArray(m.since)) out.since = m.since.map((x, i) => checkSince(x, `${where}: since[${i}]`));
  if (m.referrers !== undefined) {
    if (!Array.isArray(m.referrers)) fail(where, 'referrers must be an array');
    const names = new Set(targets.map((t) => t.name));
    out.referrers = m.referrers.map((r, i) => checkReferrer(r, names, `${where}: referrers[${i}]`));
  }
  return out;
}

/** A release is a non-negative integer JSON can carry exactly. */
function checkRelease(r: unknown, where: string): number {
  if (typeof r !== 'number' || !Number.isSafeInteger(r) || r < 0) fail(where, `invalid release ${JSON.stringify(r)}`);
  return r;
}

/** A referrer names a target of the bundle, a subject digest, and a cosign tag only for that subject. */
function checkReferrer(x: unknown, targets: ReadonlySet<string>, where: string): BundleReferrer {
  const r = x as BundleReferrer;
  if (!r || typeof r !== 'object' || typeof r.target !== 'string' || !targets.has(r.target)) fail(where, `names no target of the bundle (${JSON.stringify(r?.target)})`);
  const out: BundleReferrer = { target: r.target, subject: parseDigest(r.subject, where), descriptor: checkDescriptor(r.descriptor, where) };
  if (r.tag !== undefined) {
    const m = typeof r.tag === 'string' ? COSIGN_TAG_RE.exec(r.tag) : null;
    if (!m || `sha256:${m[1]}` !== out.subject) fail(where, `tag ${JSON.stringify(r.tag)} is not a cosign tag of ${out.subject}`);
    out.tag = r.tag;
  }
  return out;
}

function checkSince(x: unknown, where: string): BundleSince {
  const s = x as BundleSince;
  if (!s || typeof s !== 'object') fail(where, 'invalid entry');
  const out: BundleSince = { digest: parseDigest(s.digest, where) };
  if (typeof s.name === 'string') out.name = s.name;
  return out;
}

/** Parses `bundle.json.sig`. */
export function parseSignature(bytes: Buffer, where = SIGNATURE_MEMBER): BundleSignature {
  const s = parseJson<BundleSignature>(bytes, where);
  if (!s || s.algorithm !== 'ed25519') {
    throw new BlockportError('ESIGNATURE', `${where}: unsupported signature algorithm ${JSON.stringify(s?.algorithm)} (want ed25519)`);
  }
  if (!isDigest(s.keyId) || typeof s.signature !== 'string' || !/^[A-Za-z0-9+/]+=*$/.test(s.signature)) {
    throw new BlockportError('ESIGNATURE', `${where}: malformed signature`);
  }
  return { algorithm: 'ed25519', keyId: s.keyId, signature: s.signature };
}
