import { basename } from 'node:path';
import { Readable } from 'node:stream';
import type { FsBlobStore } from '../cas/blob-store.js';
import { sha256, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import type { ImageReader } from '../oci/image.js';
import { readSmall } from '../oci/json.js';
import { LayoutImageReader, OciLayout } from '../oci/layout.js';
import { Annotation } from '../oci/media-types.js';
import { ArchiveImageReader } from '../oci/oci-archive.js';
import { openImage, openStore } from '../oci/open.js';
import { checkNameTag, parseRef, type ImageRef } from '../oci/reference.js';
import { resolveImage } from '../oci/resolve.js';
import type { Descriptor } from '../oci/types.js';
import type { StandardLayer, WantImage } from './plan.js';
import { reachable } from './reachable.js';

/** An image as a bundle sees it: the descriptor its name is tagged to, and its blobs. */
export interface ImageSource {
  ref: string;
  /** What the image is tagged to (index or manifest), without the ref-name annotation. */
  top: Descriptor;
  /** A small blob (index, manifest, config), verified. */
  read(d: Descriptor): Promise<Buffer>;
  /** A verified stream of any blob the image reaches. */
  open(d: Descriptor): Promise<Readable>;
  /** The blob files, when the place keeps them as files. */
  files?: FsBlobStore;
  close(): Promise<void>;
}

function bare(d: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.artifactType) out.artifactType = d.artifactType;
  if (d.platform) out.platform = d.platform;
  return out;
}

function fromLayout(layout: OciLayout, top: Descriptor, ref: string): ImageSource {
  return {
    ref,
    top: bare(top),
    read: (d) => layout.readBlob(d),
    open: (d) => layout.blobs.open(d.digest, d.size),
    files: layout.blobs,
    close: async () => {},
  };
}

/** Wraps an opened image (archives): small blobs it already parsed are served from memory. */
function fromReader(reader: ImageReader): ImageSource {
  const resolved = reader instanceof ArchiveImageReader || reader instanceof LayoutImageReader ? reader.resolved : undefined;
  const index = resolved?.index;
  const known = new Map<Digest, Buffer>([
    [reader.manifestDescriptor.digest, reader.manifestBytes],
    [reader.manifest.config.digest, reader.configBytes],
    ...(index ? [[index.descriptor.digest, index.bytes] as [Digest, Buffer]] : []),
  ]);
  return {
    ref: reader.ref,
    top: bare(index?.descriptor ?? reader.manifestDescriptor),
    read: async (d) => known.get(d.digest) ?? readSmall(await reader.openBlob(d), `blob ${d.digest}`),
    open: async (d) => {
      const bytes = known.get(d.digest);
      if (bytes && sha256(bytes) === d.digest) return Readable.from([bytes]);
      return reader.openBlob(d);
    },
    files: reader.files,
    close: () => reader.close(),
  };
}

/** Opens a store NAME:TAG or any transport reference as a bundle source. */
export async function openSource(ref: string | ImageRef, label = typeof ref === 'string' ? ref : JSON.stringify(ref)): Promise<ImageSource> {
  const r = typeof ref === 'string' ? parseRef(ref) : ref;
  if (r.transport === 'store') {
    const store = openStore();
    const top = await store.find(r.name).catch((err) => {
      if (err instanceof BlockportError && err.code === 'ENOTFOUND') {
        throw new BlockportError('ENOTFOUND', `no image ${r.name} in the store (${store.root}); see 'blockport images'`, { subject: r.name });
      }
      throw err;
    });
    return fromLayout(store, top, label);
  }
  if (r.transport === 'oci') {
    const layout = new OciLayout(r.dir);
    return fromLayout(layout, await layout.find(r.tag), label);
  }
  return fromReader(await openImage(r));
}

function isNameTag(s: string): boolean {
  try {
    checkNameTag(s, s);
    return true;
  } catch {
    return false;
  }
}

/**
 * A --to argument: `NAME:TAG` (the store), `REF` (a transport reference; its name is the archive's
 * NAME:TAG, or the folder's base name with the oci tag), or `NAME:TAG=REF` to name it explicitly.
 */
export function parseTarget(arg: string): { name: string; ref: ImageRef; label: string } {
  // a store name never holds '=', so "NAME:TAG=REF" cannot be mistaken for a reference
  const eq = arg.indexOf('=');
  const named = eq > 0 && isNameTag(arg.slice(0, eq));
  if (named) return { name: arg.slice(0, eq), ref: parseRef(arg.slice(eq + 1)), label: arg.slice(eq + 1) };
  const ref = parseRef(arg);
  if (ref.transport === 'store') return { name: ref.name, ref, label: arg };
  if (ref.transport === 'docker-archive' && ref.name) return { name: ref.name, ref, label: arg };
  const place = ref.transport === 'oci' ? ref.dir : ref.transport === 'oci-archive' ? ref.file : '';
  const tag = ref.transport === 'oci' || ref.transport === 'oci-archive' ? ref.tag : undefined;
  const base = basename(place.replace(/\/+$/, '')).replace(/\.(tar|oci)$/, '').toLowerCase();
  const guess = tag ? `${base}:${tag}` : '';
  try {
    return { name: checkNameTag(guess, arg), ref, label: arg };
  } catch {
    throw new BlockportError('EUSAGE', `${arg}: cannot tell which NAME:TAG the receiver should use; write --to NAME:TAG=${arg}`);
  }
}

/**
 * The uncompressed size of a layer: blockport's annotation, else the blob size (exact for an
 * uncompressed layer, a lower bound for a compressed one; planning reads no layer).
 */
function standardSize(l: Descriptor): number {
  const known = l.annotations?.[Annotation.layerSize];
  return known !== undefined && /^\d+$/.test(known) ? Number(known) : l.size;
}

/** Reads what planning needs of one image: reachable blobs and standard layers. */
export async function describeWant(src: ImageSource, name: string): Promise<WantImage> {
  const blobs = await reachable(src.top, (d) => src.read(d), src.ref);
  const img = await resolveImage(src.top, (d) => src.read(d), src.ref);
  const layers: StandardLayer[] = img.manifest.layers.map((l, i) => ({ diffId: img.config.rootfs.diff_ids[i], blob: l.digest, size: standardSize(l) }));
  return { name, top: src.top, blobs, layers, configSize: img.manifest.config.size };
}
