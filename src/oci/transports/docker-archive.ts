import { BlockportError } from '../../errors.js';
import { openDockerArchive, writeDockerArchiveFile } from '../docker-archive.js';
import { checkNameTag, splitPath } from '../reference.js';
import type { Transport } from '../transport.js';

/** docker-archive:FILE[:NAME:TAG]: `docker save` output. */
export interface DockerArchiveRef {
  readonly transport: 'docker-archive';
  readonly file: string;
  readonly name?: string;
}

export const dockerArchiveTransport: Transport<DockerArchiveRef> = {
  name: 'docker-archive',
  usage: 'docker-archive:FILE[:NAME:TAG]',
  description: "'docker save' output (legacy or Docker 25+ layout)",
  layerCompression: 'none',
  parse(rest, text) {
    const [file, name] = splitPath(rest);
    if (!file) throw new BlockportError('EUSAGE', `${text}: missing file (want docker-archive:FILE[:NAME:TAG])`);
    return { transport: 'docker-archive', file, name: name === undefined ? undefined : checkNameTag(name, text) };
  },
  format: (r) => `docker-archive:${r.file}${r.name ? `:${r.name}` : ''}`,
  open: (r, label) => openDockerArchive(r.file, r.name, label),
  // a docker-archive holds one standard image: uncompressed layers, manifest.json first
  async writeStandard(r, img, opts) {
    const layers = [];
    for (const l of img.layers) layers.push({ ...l, open: () => l.open(), plan: l.plan && (() => l.plan!()), size: l.size ?? (await l.measure()) });
    await writeDockerArchiveFile(r.file, { configBytes: img.configBytes, repoTags: opts.repoTags ?? [], layers });
    return {
      configDigest: img.configDescriptor.digest,
      layers: layers.map((l, index) => ({ index, diffId: l.diffId, size: l.size, spliced: l.spliced, hashed: !l.verified })),
    };
  },
  nameOf: (r) => r.name,
};
