import { Readable } from 'node:stream';
import { sha256, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { decompressor } from '../oci/compression.js';
import { TarReader, type TarEntry } from '../tar/reader.js';
import { BLOCK } from '../tar/header.js';
import {
  MANIFEST_MEMBER,
  MAX_MANIFEST,
  MAX_SIGNATURE,
  SIGNATURE_MEMBER,
  blobMember,
  isDelta,
  parseBundleManifest,
  parseSignature,
  type BundleBlob,
  type BundleManifest,
  type BundleSignature,
} from './format.js';
import { patchDecoder, vcdiffDecoder } from './patch.js';
import { recipeDecoder } from './recipe.js';
import { zipDeltaDecoder } from './delta-zip.js';
import { concatFiles, findVolumes, missingVolumeHint } from './volumes.js';
import { CHUNK } from '../chunk.js';

export interface OpenBundleOptions {
  /** The file of a blob the receiver holds: the base a `zstd-patch` or `vcdiff` member is decoded against, or a `recipe` copies from. */
  basePath?: (d: Digest) => string;
}

/** One blob member: its manifest entry and its decoded bytes (not verified: the caller checks them). */
export interface BundleEntry {
  blob: BundleBlob;
  index: number;
  /** The decoded bytes; read it to the end, or do not call it to skip the member. */
  data(): Readable;
}

/** A bundle opened for reading, positioned after bundle.json and its signature. */
export interface OpenedBundle {
  files: string[];
  manifest: BundleManifest;
  manifestBytes: Buffer;
  /** sha256 of bundle.json: the bundle's identity. */
  digest: Digest;
  signature?: BundleSignature;
  /** The blob members in manifest order, checked against it; ends by checking the end of the archive. */
  blobs(): AsyncGenerator<BundleEntry>;
}

async function readBody(e: TarEntry, limit: number, what: string): Promise<Buffer> {
  if (e.header.size > limit) throw new BlockportError('ECORRUPT', `${what} is larger than ${limit} bytes`);
  const parts: Buffer[] = [];
  for await (const c of e.body()) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

function isRegular(e: TarEntry): boolean {
  return e.header.type === 'file';
}

/**
 * Opens a bundle (one file, or its volumes in order; a single FILE.001 finds the rest) as a stream:
 * reads bundle.json and the optional signature, and nothing else until `blobs()` is iterated.
 */
export async function openBundle(args: string[], opts: OpenBundleOptions = {}): Promise<OpenedBundle> {
  const files = await findVolumes(args);
  try {
    return await open(files, opts);
  } catch (err) {
    throw await explainEnd(err, files);
  }
}

/**
 * A bundle in volumes that ends early most likely lacks its next volume: say so instead of the
 * tar reader's "truncated" or "checksum mismatch" (a volume boundary cuts a header).
 */
async function explainEnd(err: unknown, files: string[]): Promise<unknown> {
  if (!(err instanceof BlockportError) || err.code !== 'ECORRUPT') return err;
  const hint = await missingVolumeHint(files);
  return hint ? new BlockportError('ENOTFOUND', hint, { subject: files.at(-1), cause: err }) : err;
}

async function open(files: string[], opts: OpenBundleOptions): Promise<OpenedBundle> {
  const label = files.length > 1 ? `${files[0]} (+${files.length - 1} volumes)` : files[0];
  const reader = new TarReader(concatFiles(files), label);
  const it = reader.entries();
  const first = await it.next();
  if (first.done || first.value.header.path !== MANIFEST_MEMBER || !isRegular(first.value)) {
    throw new BlockportError('ECORRUPT', `${label}: not a blockport bundle (the first member must be ${MANIFEST_MEMBER})`, { subject: label });
  }
  const manifestBytes = await readBody(first.value, MAX_MANIFEST, `${label}: ${MANIFEST_MEMBER}`);
  const manifest = parseBundleManifest(manifestBytes, `${label}: ${MANIFEST_MEMBER}`);
  let pending = await it.next();
  let signature: BundleSignature | undefined;
  if (!pending.done && pending.value.header.path === SIGNATURE_MEMBER) {
    signature = parseSignature(await readBody(pending.value, MAX_SIGNATURE, `${label}: ${SIGNATURE_MEMBER}`), `${label}: ${SIGNATURE_MEMBER}`);
    pending = await it.next();
  }
  async function* blobs(): AsyncGenerator<BundleEntry> {
    try {
      yield* members();
    } catch (err) {
      throw await explainEnd(err, files);
    }
  }
  async function* members(): AsyncGenerator<BundleEntry> {
    for (const [index, blob] of manifest.blobs.entries()) {
      const r = index === 0 ? pending : await it.next();
      if (r.done) throw new BlockportError('ECORRUPT', `${label}: truncated (ends before ${blobMember(blob)}, blob ${index + 1} of ${manifest.blobs.length})`, { subject: label });
      const e = r.value;
      if (e.header.path !== blobMember(blob) || !isRegular(e) || e.header.size !== blob.storedSize) {
        throw new BlockportError('ECORRUPT', `${label}: member ${JSON.stringify(e.header.path)} (${e.header.size} bytes) where bundle.json lists ${blobMember(blob)} (${blob.storedSize} bytes)`, { subject: label });
      }
      yield { blob, index, data: () => decoded(e, blob, label, opts.basePath, files) };
    }
    const end = manifest.blobs.length === 0 ? pending : await it.next();
    if (!end.done) throw new BlockportError('ECORRUPT', `${label}: unexpected member ${JSON.stringify(end.value.header.path)} after the last blob`, { subject: label });
    const tail = reader.tail ?? Buffer.alloc(0);
    if (tail.length < 2 * BLOCK || tail.some((b) => b !== 0)) {
      throw new BlockportError('ECORRUPT', `${label}: truncated (no end-of-archive marker)`, { subject: label });
    }
  }
  return { files, manifest, manifestBytes, digest: sha256(manifestBytes), signature, blobs };
}

/** The transform that decodes a member: none, zstd, or a zstd patch or VCDIFF delta against the base's file. */
function decoder(blob: BundleBlob, what: string, basePath: OpenBundleOptions['basePath']) {
  if (blob.encoding === 'zstd') return decompressor('zstd', what);
  if (blob.encoding === 'recipe') return recipeDecoder(blob, what, basePath);
  if (!isDelta(blob.encoding)) return undefined;
  if (!basePath || !blob.base) throw new BlockportError('EUNSUPPORTED', `${what}: a delta needs its base blob ${blob.base?.digest ?? ''}, and no store was given`);
  const base = basePath(blob.base.digest);
  if (blob.encoding === 'zip-delta') return zipDeltaDecoder(base, blob.base.size, blob.size, what);
  return blob.encoding === 'vcdiff' ? vcdiffDecoder(base, what) : patchDecoder(base, what);
}

/** A member's bytes; a bundle cut short inside it names the missing volume. */
async function* explained(e: TarEntry, files: string[]): AsyncGenerator<Buffer> {
  try {
    yield* e.body();
  } catch (err) {
    throw await explainEnd(err, files);
  }
}

function decoded(e: TarEntry, blob: BundleBlob, label: string, basePath: OpenBundleOptions['basePath'], files: string[]): Readable {
  const body = Readable.from(explained(e, files), { objectMode: false, highWaterMark: CHUNK });
  const d = decoder(blob, `${label}: ${blobMember(blob)}`, basePath);
  if (!d) return body;
  body.on('error', (err) => d.destroy(err));
  // a decoder that fails before its consumer listens (zstd absent) must not throw from pipe()'s handler
  d.on('error', () => body.destroy());
  return body.pipe(d);
}
