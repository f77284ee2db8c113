import type { Readable } from 'node:stream';
import { BlockportError } from '../errors.js';
import type { FileSpot, ImageReader } from './image.js';
import { formatPlatform, hostPlatform, imageEntries, matchesPlatform, platformOf, resolveImage, ResolvedImageReader, type ResolvedImage } from './resolve.js';
import type { Descriptor, Platform } from './types.js';

/**
 * The images of the index `src` was opened through, one per platform (`want` only, when given);
 * [] when the reference named a manifest.
 */
export function platformEntries(src: ImageReader, want?: Platform[]): Descriptor[] {
  if (!src.index) return [];
  const all = imageEntries(src.index.index);
  return want?.length ? all.filter((m) => want.some((w) => matchesPlatform(m.platform, w))) : all;
}

/** One more image of the same place as `base`: the same blobs and records, another manifest of its index. */
class SiblingReader extends ResolvedImageReader {
  /** The registry repository, when `base` has one: writers mount blobs from it. */
  readonly repo?: unknown;

  constructor(
    private readonly base: ImageReader,
    resolved: ResolvedImage,
    platform: string,
  ) {
    super(`${base.ref} [${platform}]`, resolved, base.records);
    this.repo = (base as { repo?: unknown }).repo;
  }

  protected openStored(desc: Descriptor): Promise<Readable> {
    return this.base.openBlob(desc);
  }

  locate(desc: Descriptor): Promise<FileSpot | undefined> {
    return this.base.locate(desc);
  }
}

/** Opens the image `entry` of `base`'s index, reading its blobs where `base` reads them; closing it leaves `base` open. */
export async function openSibling(base: ImageReader, entry: Descriptor): Promise<ImageReader> {
  if (entry.digest === base.transport?.descriptor.digest || entry.digest === base.manifestDescriptor.digest) return base;
  const resolved = await resolveImage(entry, (d) => base.readBlob(d), base.ref);
  resolved.index = base.index;
  resolved.top = base.top;
  resolved.topBytes = base.index?.bytes;
  return new SiblingReader(base, resolved, formatPlatform(entry.platform));
}

/**
 * The images of `src` to work on: each platform of its index (those of `want` when given), or
 * `src` itself when it names one image. Refuses a `want` it does not hold, naming what it holds.
 */
export async function imagesOf(src: ImageReader, want?: Platform[]): Promise<ImageReader[]> {
  const all = platformEntries(src);
  if (all.length <= 1) {
    const own = platformOf(src.config);
    if (want?.length && !want.some((w) => matchesPlatform(own, w))) throw new BlockportError('ENOTFOUND', `${src.ref}: no image for ${want.map(formatPlatform).join(', ')} (it holds ${formatPlatform(own)})`);
    return [src];
  }
  const chosen = platformEntries(src, want);
  if (chosen.length === 0) throw new BlockportError('ENOTFOUND', `${src.ref}: no image for ${want!.map(formatPlatform).join(', ')} (it holds ${all.map((m) => formatPlatform(m.platform)).join(', ')})`);
  return Promise.all(chosen.map((e) => openSibling(src, e)));
}

/**
 * The one image of `src` a single-image output (a docker-archive) takes: the one of `want` when
 * given, else the host's. Refuses ambiguity, listing the platforms.
 */
export async function oneImage(src: ImageReader, want: Platform[] | undefined): Promise<ImageReader> {
  const all = platformEntries(src);
  const list = all.map((m) => formatPlatform(m.platform)).join(', ');
  if ((want?.length ?? 0) > 1) throw new BlockportError('EUSAGE', `a docker-archive holds one image: choose one --platform (${src.ref} holds ${list || formatPlatform(platformOf(src.config))})`);
  if (all.length <= 1) return (await imagesOf(src, want))[0];
  const w = want?.[0] ?? hostPlatform();
  const entry = all.find((m) => matchesPlatform(m.platform, w));
  if (!entry) throw new BlockportError('ENOTFOUND', `${src.ref}: no image for ${formatPlatform(w)} (it holds ${list}); choose one with --platform`);
  return openSibling(src, entry);
}
