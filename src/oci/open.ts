import { BlockportError } from '../errors.js';
import { openDockerArchive } from './docker-archive.js';
import type { ImageReader, ImageWriter } from './image.js';
import { LayoutImageWriter, OciLayout } from './layout.js';
import { OciArchiveWriter, openOciArchive } from './oci-archive.js';
import { parseRef, storeHome, type ImageRef } from './reference.js';

/** The registry client, loaded for docker:// references only: http, https and tls cost every other command start-up time. */
function registry(): Promise<typeof import('../registry/remote-image.js')> {
  return import('../registry/remote-image.js');
}

/** The local store: an OCI image layout whose tags are NAME:TAG. */
export function openStore(env: NodeJS.ProcessEnv = process.env): OciLayout {
  return new OciLayout(storeHome(env));
}

/** Opens any reference for reading (oci:, oci-archive:, docker-archive:, docker://, or a store NAME:TAG). */
export async function openImage(ref: string | ImageRef): Promise<ImageReader> {
  const r = typeof ref === 'string' ? parseRef(ref) : ref;
  const name = typeof ref === 'string' ? ref : JSON.stringify(ref);
  switch (r.transport) {
    case 'oci':
      return new OciLayout(r.dir).openImage(r.tag, name);
    case 'oci-archive':
      return openOciArchive(r.file, r.tag, name);
    case 'docker-archive':
      return openDockerArchive(r.file, r.name, name);
    case 'docker':
      return (await registry()).openRemoteImage(typeof ref === 'string' ? ref : r);
    case 'store':
      return openStore().openImage(r.name, name).catch((err) => {
        if (err instanceof BlockportError && err.code === 'ENOTFOUND') {
          throw new BlockportError('ENOTFOUND', `no image ${r.name} in the store (${storeHome()}); see 'blockport images'`, { subject: r.name });
        }
        throw err;
      });
  }
}

/** Opens an OCI place for writing; docker-archive outputs are written by materialize directly. */
export async function openWriter(ref: string | ImageRef): Promise<ImageWriter> {
  const r = typeof ref === 'string' ? parseRef(ref) : ref;
  const name = typeof ref === 'string' ? ref : JSON.stringify(ref);
  switch (r.transport) {
    case 'oci': {
      const layout = new OciLayout(r.dir);
      await layout.init();
      return new LayoutImageWriter(name, layout, r.tag);
    }
    case 'oci-archive':
      return new OciArchiveWriter(r.file, r.tag, name);
    case 'store': {
      const layout = openStore();
      await layout.init();
      return new LayoutImageWriter(name, layout, r.name);
    }
    case 'docker':
      return (await registry()).openRemoteWriter(typeof ref === 'string' ? ref : r);
    case 'docker-archive':
      throw new BlockportError('EUNSUPPORTED', `${name}: a block-form image cannot be written as a docker-archive (it has no place for blocks); use oci:, oci-archive: or the store`);
  }
}
