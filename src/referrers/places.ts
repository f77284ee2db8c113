import type { ImageReader, ImageWriter } from '../oci/image.js';
import { LayoutImageReader, LayoutImageWriter } from '../oci/layout.js';
import { LayoutReferrers, LayoutReferrerSink } from './layout-referrers.js';
import type { ReferrerSink, ReferrerSource } from './referrer.js';

/** Where the referrers of images opened from a place are read, and where a writer's go. */
export interface ReferrerPlace {
  source(img: ImageReader): ReferrerSource | undefined;
  sink(w: ImageWriter): ReferrerSink | undefined;
}

/** Layouts and the store: the image's own layout (the store's tags are NAME:TAG, so its sink knows the repository). */
const layouts: ReferrerPlace = {
  source: (img) => (img instanceof LayoutImageReader ? new LayoutReferrers(img.layout, img) : undefined),
  sink(w) {
    if (!(w instanceof LayoutImageWriter)) return undefined;
    const tag = w.tagName;
    return new LayoutReferrerSink(w.layout, tag?.includes(':') ? tag.slice(0, tag.lastIndexOf(':')) : undefined);
  },
};

const places: ReferrerPlace[] = [layouts];

/** Makes another place's referrers known (the registry registers itself; see src/transports.ts). */
export function registerReferrerPlace(p: ReferrerPlace): void {
  places.unshift(p);
}

/** Where the referrers of `img` are, or undefined for a place that keeps none (archives). */
export function referrerSource(img: ImageReader): ReferrerSource | undefined {
  for (const p of places) {
    const s = p.source(img);
    if (s) return s;
  }
  return undefined;
}

/** Where referrers written beside `w`'s image go, or undefined for a place that keeps none. */
export function referrerSink(w: ImageWriter): ReferrerSink | undefined {
  for (const p of places) {
    const s = p.sink(w);
    if (s) return s;
  }
  return undefined;
}
