/** OCI layouts written the way vendors' tools write them: layers compressed by a given command, manifests and indexes as plain JSON. */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './fixtures/images.js';

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
  artifactType?: string;
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Writes `bytes` as a blob of the layout `dir`. */
export async function putBlob(dir: string, mediaType: string, bytes: Buffer): Promise<Blob> {
  const digest = sha(bytes);
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** A JSON blob with 3-space indentation and a final newline: bytes no serializer of blockport would write, so keeping them is tested. */
export const putJsonBlob = (dir: string, mediaType: string, value: unknown) => putBlob(dir, mediaType, Buffer.from(`${JSON.stringify(value, null, 3)}\n`));

/**
 * One image of `layerTars`, each compressed by the shell command `compress` (stdin to stdout,
 * e.g. `gzip -6 -n`, `zstd -3`, `cat`); returns the manifest's descriptor.
 */
export async function vendorImage(dir: string, layerTars: string[], opts: { compress: string; mediaType: string; arch?: string; annotations?: Record<string, string> }): Promise<Blob> {
  const layers: Blob[] = [];
  const diffIds: string[] = [];
  for (const tar of layerTars) {
    const { stdout } = await run('sh', ['-c', `${opts.compress} < '${tar}' | base64 -w0`]);
    layers.push(await putBlob(dir, opts.mediaType, Buffer.from(stdout, 'base64')));
    diffIds.push(sha(await readFile(tar)));
  }
  const arch = opts.arch ?? 'amd64';
  const config = await putJsonBlob(dir, 'application/vnd.oci.image.config.v1+json', {
    architecture: arch,
    os: 'linux',
    config: { Env: ['PATH=/usr/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layerTars.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `layer ${i}` })),
  });
  const manifest = await putJsonBlob(dir, 'application/vnd.oci.image.manifest.v1+json', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config,
    layers,
    annotations: { 'org.opencontainers.image.vendor': 'ACME', ...opts.annotations },
  });
  return { ...manifest, platform: { os: 'linux', architecture: arch } };
}

/** Writes the layout's oci-layout and an index.json tagging each of `tags`. */
export async function tagLayout(dir: string, tags: Record<string, Blob>): Promise<void> {
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const manifests = Object.entries(tags).map(([tag, d]) => ({ ...d, annotations: { ...d.annotations, 'org.opencontainers.image.ref.name': tag } }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
}

/** An image index blob of `manifests` (with their platforms), as a multi-platform build writes it. */
export function indexOf(dir: string, manifests: Blob[]): Promise<Blob> {
  return putJsonBlob(dir, 'application/vnd.oci.image.index.v1+json', { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
}

/** The manifest digest a layout's tag names, and that blob's bytes. */
export async function taggedBlob(dir: string, tag: string): Promise<{ digest: string; mediaType: string; bytes: Buffer }> {
  const idx = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Blob[] };
  const d = idx.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!d) throw new Error(`${dir}: no tag ${tag}`);
  return { digest: d.digest, mediaType: d.mediaType, bytes: await readFile(join(dir, 'blobs', 'sha256', d.digest.slice(7))) };
}
