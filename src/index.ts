/** The blockport library: what the CLI uses, for build plugins and other tools. */
export { BlockportError, type ErrorCode } from './errors.js';
export { type Digest, parseDigest, sha256 } from './digest/digest.js';
export { FsBlobStore, type BlobStore, type StoredBlob } from './cas/blob-store.js';
export { MediaType, Annotation, type Compression } from './oci/media-types.js';
export type { Descriptor, ImageManifest, ImageIndex, ImageConfig } from './oci/types.js';
export type { ImageReader, ImageWriter, FileSpot, LayerRecords } from './oci/image.js';
import './transports.js';
export { parseRef, formatRef, openImage, openWriter, writeImage, registerTransport, listTransports, type ImageRef, type Transport } from './oci/transport.js';
export { Store, storeHome } from './store/store.js';
export { writeImageTo, type StandardImage, type LazyLayer, type WriteImageOptions, type WrittenImage } from './oci/standard-image.js';
export { OciLayout } from './oci/layout.js';
export { openRemoteImage, openRemoteWriter, RemoteImageWriter } from './registry/remote-image.js';
export { blockify, type BlockifyOptions, type BlockifyResult, type LayerStats } from './blocks/blockify.js';
export { materialize, materializeToWriter, materializeToStream, standardImage, type MaterializeOptions, type MaterializeResult } from './blocks/materialize.js';
export { describeImage, type ImageDescription } from './blocks/describe.js';
export { rulesFor, parseSize, PRESETS, type Preset, type BlockRules } from './blocks/rules.js';
export { formatImportEntry, parseImportEntry, importEntryName, type ImportEntry } from './blocks/import-entry.js';
export { writeBlockFormImage } from './blocks/packaging.js';
