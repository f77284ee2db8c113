import type { Transport } from '../oci/transport.js';
import { checkNameTag } from '../oci/reference.js';
import { Store } from './store.js';

/** NAME:TAG: an image in the local store. */
export interface StoreRef {
  readonly transport: 'store';
  readonly name: string;
}

export const storeTransport: Transport<StoreRef> = {
  name: 'store',
  usage: 'NAME:TAG',
  description: 'the local store ($BLOCKPORT_HOME, default ~/.local/share/blockport)',
  layerCompression: 'none',
  parse: (rest, text) => ({ transport: 'store', name: checkNameTag(text, 'store reference') }),
  format: (r) => r.name,
  open: (r, label, opts) => Store.open().openImage(r.name, label, opts),
  openWriter: (r, label) => Store.open().openWriter(r.name, label),
  nameOf: (r) => r.name,
};
