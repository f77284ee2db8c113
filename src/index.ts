/** The blockport library: what the CLI uses, for build plugins and other tools. */
export { BlockportError, type ErrorCode } from './errors.js';
export { type Digest, parseDigest, sha256 } from './digest/digest.js';
export { FsBlobStore, type BlobStore, type StoredBlob } from './cas/blob-store.js';
export { MediaType, Annotation, type Compression } from './oci/media-types.js';
export type { Descriptor, ImageManifest, ImageIndex, ImageConfig } from './oci/types.js';
export type { ImageReader, ImageWriter } from './oci/image.js';
export { parseRef, storeHome, type ImageRef } from './oci/reference.js';
export { openImage, openWriter, openStore } from './oci/open.js';
export { OciLayout } from './oci/layout.js';
export { openRemoteImage, openRemoteWriter, RemoteImageWriter } from './registry/remote-image.js';
export { blockify, type BlockifyOptions, type BlockifyResult, type LayerStats } from './blocks/blockify.js';
export { materializeToWriter, materializeToDockerArchive, type MaterializeOptions, type MaterializeResult } from './blocks/materialize.js';
export { describeImage, type ImageDescription } from './blocks/describe.js';
export { rulesFor, parseSize, PRESETS, type Preset, type BlockRules } from './blocks/rules.js';
export { formatImportEntry, parseImportEntry, importEntryName, type ImportEntry } from './blocks/import-entry.js';
export { writeBlockFormImage } from './blocks/packaging.js';
