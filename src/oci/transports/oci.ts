import { basename } from 'node:path';
import { BlockportError } from '../../errors.js';
import { LayoutImageWriter, OciLayout } from '../layout.js';
import { splitPath, TAG_RE } from '../reference.js';
import type { Transport } from '../transport.js';

/** oci:DIR[:TAG]: an OCI image layout folder. */
export interface OciRef {
  readonly transport: 'oci';
  readonly dir: string;
  readonly tag?: string;
}

/** Parses DIR[:TAG] (and FILE[:TAG] for oci-archive): the path ends at the first colon, as in skopeo. */
export function parsePlaceTag(rest: string, text: string, what: string): [string, string | undefined] {
  const [place, tag] = splitPath(rest);
  if (!place) throw new BlockportError('EUSAGE', `${text}: missing ${what}`);
  if (tag !== undefined && !TAG_RE.test(tag)) throw new BlockportError('EUSAGE', `${text}: invalid tag ${JSON.stringify(tag)}`);
  return [place, tag];
}

/** "base:tag" from a folder or file name and a tag, when both make a valid NAME:TAG. */
export function nameFromPlace(place: string, tag: string | undefined): string | undefined {
  const base = basename(place.replace(/\/+$/, '')).replace(/\.(tar|oci)$/, '').toLowerCase();
  return tag ? `${base}:${tag}` : undefined;
}

export const ociTransport: Transport<OciRef> = {
  name: 'oci',
  usage: 'oci:DIR[:TAG]',
  description: 'an OCI image layout folder',
  layerCompression: 'none',
  parse(rest, text) {
    const [dir, tag] = parsePlaceTag(rest, text, 'directory (want oci:DIR[:TAG])');
    return { transport: 'oci', dir, tag };
  },
  format: (r) => `oci:${r.dir}${r.tag ? `:${r.tag}` : ''}`,
  open: (r, label, opts) => new OciLayout(r.dir).openImage(r.tag, label, undefined, opts),
  async openWriter(r, label) {
    const layout = new OciLayout(r.dir);
    await layout.init();
    return new LayoutImageWriter(label, layout, r.tag);
  },
  guessName: (r) => nameFromPlace(r.dir, r.tag),
};
