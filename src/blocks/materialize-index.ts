import { Readable } from 'node:stream';
import { BlockportError } from '../errors.js';
import { readSource } from '../fidelity/source.js';
import type { ImageReader, ImageWriter } from '../oci/image.js';
import { putJson } from '../oci/json.js';
import { MediaType } from '../oci/media-types.js';
import { openSibling, platformEntries } from '../oci/platforms.js';
import { formatPlatform, imageEntries } from '../oci/resolve.js';
import { transportOf, type ImageRef } from '../oci/transport.js';
import type { Descriptor, ImageIndex, Platform } from '../oci/types.js';
import { materializeToWriter, type MaterializeOptions, type MaterializeResult } from './materialize.js';

export interface IndexResult extends MaterializeResult {
  /** Each platform written: its manifest, and whether it is the source's own. */
  platforms: { platform: string; manifest: Descriptor; original: boolean }[];
}

/** The standard index to write back: kept by a multi-platform block-form image, or a standard index itself. */
async function sourceIndex(src: ImageReader, first: ImageReader): Promise<{ descriptor: Descriptor; bytes: Buffer } | undefined> {
  if (first.manifest.blocks) return (await readSource(first))?.index;
  const d = src.index!.descriptor;
  return { descriptor: { mediaType: d.mediaType, digest: d.digest, size: d.size }, bytes: src.index!.bytes };
}

/** A writer whose commit only records the top: the images of an index are tagged once, by the index. */
function uncommitted(dst: ImageWriter, tops: Descriptor[]): ImageWriter {
  return {
    ref: dst.ref,
    hasBlob: (d) => dst.hasBlob(d),
    putBlob: (s, e) => dst.putBlob(s, e),
    putPlan: (p, t, e) => dst.putPlan(p, t, e),
    copyBlob: (from, d) => dst.copyBlob(from, d),
    commit: async (top) => void tops.push(top),
    abort: async () => {},
  };
}

/**
 * Materializes every platform of a multi-platform image (those of `platforms` when given) into
 * one output, tagged as an index: the source's own index (so its digest) when every platform was
 * written as the source's own manifest and all of them were asked for, else a new OCI index of
 * the manifests written.
 */
export async function materializeIndex(src: ImageReader, dst: ImageRef, label: string, opts: MaterializeOptions & { platforms?: Platform[] } = {}): Promise<IndexResult> {
  const entries = platformEntries(src, opts.platforms);
  if (entries.length === 0) throw new BlockportError('ENOTFOUND', `${src.ref}: no image for ${(opts.platforms ?? []).map(formatPlatform).join(', ')}`);
  const t = transportOf(dst);
  if (!t.openWriter) throw new BlockportError('EUNSUPPORTED', `${label}: images cannot be written there`);
  const writer = await t.openWriter(dst, label);
  const tops: Descriptor[] = [];
  try {
    const results: MaterializeResult[] = [];
    let first: ImageReader | undefined;
    for (const e of entries) {
      const img = await openSibling(src, e);
      first ??= img;
      results.push(await materializeToWriter(img, uncommitted(writer, tops), opts));
    }
    const all = entries.length === imageEntries(src.index!.index).length;
    const kept = opts.original && all && results.every((r) => r.original?.manifest) ? await sourceIndex(src, first!) : undefined;
    let top: Descriptor;
    if (kept) {
      await writer.putBlob(Readable.from([kept.bytes]), { digest: kept.descriptor.digest, size: kept.bytes.length });
      top = kept.descriptor;
    } else {
      const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: tops };
      top = await putJson(writer, MediaType.ociIndex, index);
    }
    await writer.commit(top);
    return {
      manifest: top,
      configDigest: results[0].configDigest,
      layers: results.flatMap((r) => r.layers),
      ...(opts.original && { original: { manifest: results.every((r) => r.original?.manifest), index: kept !== undefined } }),
      platforms: results.map((r, i) => ({ platform: formatPlatform(entries[i].platform), manifest: tops[i], original: Boolean(r.original?.manifest) })),
    };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
