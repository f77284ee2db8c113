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
import { BUNDLE_MEDIA_TYPE, BUNDLE_VERSION, MANIFEST_MEMBER, SIGNATURE_MEMBER, blobMember, type BundleBlob, type BundleManifest } from './format.js';
import { encodeBlobs, encodedPath, type BlobSource } from './encode.js';
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
  onProgress?: (p: { phase: 'compress' | 'write'; done: number; total: number }) => void;
  signal?: AbortSignal;
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
    const body = b.encoding === 'zstd' ? openFile(encodedPath(dir, b)) : await src.open({ mediaType: b.mediaType, digest: b.digest, size: b.size });
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

/**
 * Writes the bundle a plan describes to `out` (or its volumes): compresses what shrinks into a temp
 * folder first, because bundle.json, written first, records every member's stored size.
 */
export async function writeBundle(p: Pick<BundlePlan, 'targets' | 'send' | 'prerequisites'>, src: BlobSource, out: string, opts: WriteBundleOptions = {}): Promise<WriteBundleResult> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-bundle-'));
  try {
    const rawBytes = p.send.reduce((n, d) => n + d.size, 0);
    let done = 0;
    const onBlob = (d: Descriptor) => {
      opts.signal?.throwIfAborted();
      opts.onProgress?.({ phase: 'compress', done: (done += d.size), total: rawBytes });
    };
    const blobs = await encodeBlobs(p.send, src, dir, { compress: opts.compress ?? true, onBlob });
    const manifest: BundleManifest = { mediaType: BUNDLE_MEDIA_TYPE, version: BUNDLE_VERSION, targets: p.targets, prerequisites: p.prerequisites, blobs };
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
    return { files, bytes: written, manifest, digest: sha256(bytes), signedBy: sig?.keyId, rawBytes, storedBytes };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
