import { OciArchiveWriter, openOciArchive } from '../oci-archive.js';
import type { Transport } from '../transport.js';
import { nameFromPlace, parsePlaceTag } from './oci.js';

/** oci-archive:FILE[:TAG]: an OCI image layout in a tar file. */
export interface OciArchiveRef {
  readonly transport: 'oci-archive';
  readonly file: string;
  readonly tag?: string;
}

export const ociArchiveTransport: Transport<OciArchiveRef> = {
  name: 'oci-archive',
  usage: 'oci-archive:FILE[:TAG]',
  description: 'an OCI image layout in a tar file',
  layerCompression: 'none',
  parse(rest, text) {
    const [file, tag] = parsePlaceTag(rest, text, 'file (want oci-archive:FILE[:TAG])');
    return { transport: 'oci-archive', file, tag };
  },
  format: (r) => `oci-archive:${r.file}${r.tag ? `:${r.tag}` : ''}`,
  open: (r, label, opts) => openOciArchive(r.file, r.tag, label, opts),
  openWriter: async (r, label) => new OciArchiveWriter(r.file, r.tag, label),
  guessName: (r) => nameFromPlace(r.file, r.tag),
};
