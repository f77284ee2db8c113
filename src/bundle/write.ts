import type { KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFile } from '../cas/blob-store.js';
import { sha256, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { jsonBytes } from '../oci/json.js';
import type { Descriptor } from '../oci/types.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';
import { BUNDLE_MEDIA_TYPE, BUNDLE_VERSION, MANIFEST_MEMBER, SIGNATURE_MEMBER, blobMember, isDelta, type BundleBlob, type BundleManifest, type BundleSince, type BundleTarget } from './format.js';
import type { DeltaCandidate } from './delta.js';
import { encodeDeltas, patchPath, preferDeltas } from './delta-encode.js';
import { encodeBlobs, encodedPath, type BlobSource } from './encode.js';
import { recipePath, withRecipes, type RecipeBases } from './recipe-encode.js';
import type { BundlePlan } from './plan.js';
import { signManifest } from './sign.js';
import { writeVolumes } from './volumes.js';

export interface WriteBundleOptions {
  /** zstd-compress blobs that shrink (default true). */
  compress?: boolean;
  /** Ed25519 private key to sign bundle.json with. */
  signKey?: KeyObject;
  /** Split into volumes of this many bytes. */
  split?: number;
  /** Blobs to try as deltas (zstd or VCDIFF) against a base the receiver holds (read from `bases`); kept when smaller. */
  deltas?: { candidates: DeltaCandidate[]; bases: BlobSource; zstdLimit?: number };
  /** Blobs the receiver holds (read from their source): tars and file blocks sent may become recipes copying from them, when smaller. */
  recipes?: RecipeBases;
  onProgress?: (p: { phase: 'compress' | 'delta' | 'recipe' | 'write'; done: number; total: number }) => void;
  signal?: AbortSignal;
  /** The release number every target gets (rollback protection, spec 14.2); none when unset. */
  release?: number;
  /** The creation time written as `created` (RFC 3339); none when unset, so the same inputs give the same bytes. */
  created?: string;
  /** The images the prerequisites come from, for the receiver's messages. */
  since?: BundleSince[];
}

export interface WriteBundleResult {
  files: string[];
  /** Bytes of the bundle file(s). */
  bytes: number;
  manifest: BundleManifest;
  /** sha256 of bundle.json: the bundle's identity. */
  digest: Digest;
  signedBy?: Digest;
  /** Blobs carried, before and after compression. */
  rawBytes: number;
  storedBytes: number;
  /** Blobs carried as deltas (zstd-patch or vcdiff): how many, their size and their patches' size. */
  deltas: { blobs: number; rawBytes: number; storedBytes: number };
  /** Blobs carried as recipes: how many, their size and their members' size. */
  recipes: { blobs: number; rawBytes: number; storedBytes: number };
}

/** The work-folder file holding a blob's member; undefined when the member is the blob as is. */
function memberFile(dir: string, b: BundleBlob): string | undefined {
  if (b.encoding === 'zstd') return encodedPath(dir, b);
  if (b.encoding === 'recipe') return recipePath(dir, b);
  return isDelta(b.encoding) ? patchPath(dir, { digest: b.digest, encoding: b.encoding }) : undefined;
}

function* member(name: string, data: Buffer): Generator<Buffer> {
  yield encodeHeader({ path: name, type: 'file', size: data.length, mode: 0o644 });
  yield data;
  yield padding(data.length);
}

/** The bundle as tar bytes: bundle.json, the signature, then every blob in manifest order. */
async function* bundleBytes(m: { bytes: Buffer; sig?: Buffer; blobs: BundleBlob[] }, src: BlobSource, dir: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  yield* member(MANIFEST_MEMBER, m.bytes);
  if (m.sig) yield* member(SIGNATURE_MEMBER, m.sig);
  for (const b of m.blobs) {
    signal?.throwIfAborted();
    yield encodeHeader({ path: blobMember(b), type: 'file', size: b.storedSize, mode: 0o644 });
    const file = memberFile(dir, b);
    const body = file ? openFile(file) : await src.open({ mediaType: b.mediaType, digest: b.digest, size: b.size });
    let n = 0;
    for await (const chunk of body) {
      n += chunk.length;
      yield chunk as Buffer;
    }
    if (n !== b.storedSize) throw new BlockportError('EDIGEST', `${blobMember(b)}: ${n} bytes where ${b.storedSize} were announced (changed while the bundle was written)`, { subject: b.digest });
    yield padding(b.storedSize);
  }
  yield END_OF_ARCHIVE;
}

function withRelease(targets: BundleTarget[], release: number | undefined): BundleTarget[] {
  return release === undefined ? targets : targets.map((t) => ({ ...t, release }));
}

/** Encodes the delta candidates and keeps each one smaller than the blob's plain encoding. */
async function withDeltas(plain: BundleBlob[], src: BlobSource, dir: string, opts: WriteBundleOptions) {
  const cands = opts.deltas?.candidates.filter((c) => plain.some((b) => b.digest === c.blob.digest)) ?? [];
  if (cands.length === 0) return { blobs: plain, bases: [] };
  const total = cands.reduce((n, c) => n + c.blob.size, 0);
  let done = 0;
  const onBlob = (d: Descriptor) => opts.onProgress?.({ phase: 'delta', done: (done += d.size), total });
  const results = await encodeDeltas(cands, src, opts.deltas!.bases, dir, { onBlob, signal: opts.signal, zstdLimit: opts.deltas!.zstdLimit });
  return preferDeltas(plain, results, dir, (b) => encodedPath(dir, b));
}

/**
 * Writes the bundle a plan describes to `out` (or its volumes): compresses what shrinks into a temp
 * folder first, because bundle.json, written first, records every member's stored size.
 */
export async function writeBundle(p: Pick<BundlePlan, 'targets' | 'send' | 'prerequisites'> & Partial<Pick<BundlePlan, 'referrers'>>, src: BlobSource, out: string, opts: WriteBundleOptions = {}): Promise<WriteBundleResult> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-bundle-'));
  try {
    const rawBytes = p.send.reduce((n, d) => n + d.size, 0);
    let done = 0;
    const onBlob = (d: Descriptor) => {
      opts.signal?.throwIfAborted();
      opts.onProgress?.({ phase: 'compress', done: (done += d.size), total: rawBytes });
    };
    const plain = await encodeBlobs(p.send, src, dir, { compress: opts.compress ?? true, onBlob });
    const deltaed = await withDeltas(plain, src, dir, opts);
    const onRecipe = (d: number, total: number) => opts.onProgress?.({ phase: 'recipe', done: d, total });
    const { blobs, bases } = await withRecipes(deltaed.blobs, src, dir, opts.recipes, (b) => memberFile(dir, b), { onProgress: onRecipe, signal: opts.signal });
    const prerequisites = [...p.prerequisites, ...bases.filter((b) => !p.prerequisites.some((x) => x.digest === b.digest))];
    const manifest: BundleManifest = { mediaType: BUNDLE_MEDIA_TYPE, version: BUNDLE_VERSION, ...(opts.created ? { created: opts.created } : {}), targets: withRelease(p.targets, opts.release), prerequisites, blobs, ...(opts.since?.length ? { since: opts.since } : {}), ...(p.referrers?.length ? { referrers: p.referrers } : {}) };
    const bytes = jsonBytes(manifest);
    const sig = opts.signKey ? signManifest(bytes, opts.signKey) : undefined;
    const storedBytes = blobs.reduce((n, b) => n + b.storedSize, 0);
    let written = 0;
    async function* counted() {
      for await (const chunk of bundleBytes({ bytes, sig: sig && jsonBytes(sig), blobs }, src, dir, opts.signal)) {
        written += chunk.length;
        opts.onProgress?.({ phase: 'write', done: written, total: storedBytes });
        yield chunk;
      }
    }
    const files = await writeVolumes(counted(), out, opts.split);
    const patched = blobs.filter((b) => isDelta(b.encoding));
    const deltas = { blobs: patched.length, rawBytes: patched.reduce((n, b) => n + b.size, 0), storedBytes: patched.reduce((n, b) => n + b.storedSize, 0) };
    const recipes = blobs.filter((b) => b.encoding === 'recipe');
    const recipeSizes = { blobs: recipes.length, rawBytes: recipes.reduce((n, b) => n + b.size, 0), storedBytes: recipes.reduce((n, b) => n + b.storedSize, 0) };
    return { files, bytes: written, manifest, digest: sha256(bytes), signedBy: sig?.keyId, rawBytes, storedBytes, deltas, recipes: recipeSizes };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
