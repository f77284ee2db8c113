/** OCI and Docker media types blockport reads and writes, and blockport's own. */
export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',

  /** A layer in block form: a tar whose `.import.` entries stand for content held in blocks. */
  blockLayer: 'application/vnd.blockport.layer.v1.tar',
  blockLayerGzip: 'application/vnd.blockport.layer.v1.tar+gzip',
  blockLayerZstd: 'application/vnd.blockport.layer.v1.tar+zstd',
  /** A block holding one file's bytes, exactly. */
  blockFile: 'application/vnd.blockport.block.file.v1',
  /** A block holding a folder, as a canonical tar (see docs/spec.md). */
  blockDir: 'application/vnd.blockport.block.dir.v1.tar',
  /** artifactType of the manifest that carries blocks as layers, so registries and copiers keep them. */
  blockCarrier: 'application/vnd.blockport.blocks.v1',
  /** artifactType of what a block-form image is tagged as: the transport manifest (or, before, an index). */
  blockImage: 'application/vnd.blockport.image.v1',
  /**
   * The block-form manifest as the config of the transport manifest: a blob, never a manifest to
   * registries and copiers, so none of them can pull it as a runnable image or rewrite it.
   */
  blockManifest: 'application/vnd.blockport.manifest.v1+json',
  /**
   * A layer of the transport manifest that is a standard image's own manifest or index, kept byte
   * for byte (docs/spec.md 17.1); its own media type is in the `sourceMediaType` annotation.
   */
  sourceBlob: 'application/vnd.blockport.source.blob.v1',
} as const;

export type Compression = 'none' | 'gzip' | 'zstd';

/** The compression a layer media type declares (any +gzip/+zstd suffix, or Docker's .tar.gzip). */
export function compressionOf(mediaType: string): Compression {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd')) return 'zstd';
  return 'none';
}

/** An image index or Docker manifest list. */
export function isIndex(d: { mediaType: string }): boolean {
  return d.mediaType === MediaType.ociIndex || d.mediaType === MediaType.dockerManifestList;
}

/** An OCI or Docker v2 image manifest (carriers included: they are manifests too). */
export function isImageManifest(d: { mediaType: string }): boolean {
  return d.mediaType === MediaType.ociManifest || d.mediaType === MediaType.dockerManifest;
}

/** Anything fetched from a registry's /manifests/ endpoint rather than /blobs/. */
export function isManifestType(mediaType: string): boolean {
  return isIndex({ mediaType }) || isImageManifest({ mediaType });
}

export function isBlockLayer(mediaType: string): boolean {
  return mediaType.startsWith('application/vnd.blockport.layer.v1.tar');
}

export function isBlock(mediaType: string): boolean {
  return mediaType === MediaType.blockFile || mediaType === MediaType.blockDir;
}

/** The OCI layer media type for a compression. */
export function ociLayerType(c: Compression): string {
  return c === 'gzip' ? MediaType.ociLayerGzip : c === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer;
}

export function blockLayerType(c: Compression): string {
  return c === 'gzip' ? MediaType.blockLayerGzip : c === 'zstd' ? MediaType.blockLayerZstd : MediaType.blockLayer;
}

/** The uncompressed layer size blockport's annotation gives, when a descriptor carries a valid one. */
export function annotatedSize(desc: { annotations?: Record<string, string> }): number | undefined {
  const v = desc.annotations?.[Annotation.layerSize];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Annotation keys blockport sets. */
export const Annotation = {
  refName: 'org.opencontainers.image.ref.name',
  /** On a block-form layer descriptor: the digest of the standard layer it materializes to. */
  diffId: 'io.blockport.layer.diff-id',
  /** On any layer descriptor blockport writes: the size of the uncompressed standard layer. */
  layerSize: 'io.blockport.layer.size',
  /** On a block descriptor: the path it was first seen at (informative, for deltas and humans). */
  blockPath: 'io.blockport.block.path',
  formatVersion: 'io.blockport.format',
  /** On a block-form manifest: the digest of the standard manifest it was made from (docs/spec.md 17.1). */
  sourceManifest: 'io.blockport.source.manifest',
  /** On a multi-platform block-form index: the digest of the standard index, when every platform was kept. */
  sourceIndex: 'io.blockport.source.index',
  /** On a source blob of a transport manifest: the blob's own media type. */
  sourceMediaType: 'io.blockport.source.media-type',
  /** On a block-form layer: how to re-create the standard layer's compressed blob (docs/spec.md 17.2). */
  layerRecompress: 'io.blockport.layer.recompress',
} as const;
