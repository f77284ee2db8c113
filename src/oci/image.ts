import type { Readable } from 'node:stream';
import type { FsBlobStore, StoredBlob } from '../cas/blob-store.js';
import type { CopyThreads, Piece } from '../cas/copy-plan.js';
import type { Descriptor, ImageConfig, ImageManifest } from './types.js';

/** An image opened for reading, wherever it lives. */
export interface ImageReader {
  /** The reference it was opened from, for messages. */
  readonly ref: string;
  /** The image manifest (for a block-form image, the one with `blocks`). */
  readonly manifest: ImageManifest;
  readonly manifestBytes: Buffer;
  readonly manifestDescriptor: Descriptor;
  readonly config: ImageConfig;
  readonly configBytes: Buffer;
  /** A verified stream of a blob this image references. */
  openBlob(desc: Descriptor): Promise<Readable>;
  /** The blob files, when this place keeps blobs as files (layouts, the store): for links and ranges. */
  readonly files?: FsBlobStore;
  /** Where a blob's bytes lie, unchanged, in a plain file (a layout's blob file, an archive member), if they do. */
  locateFile?(desc: Descriptor): FileSpot | undefined;
  close(): Promise<void>;
}

/** Bytes at `offset` of the file `path`. */
export interface FileSpot {
  path: string;
  offset: number;
}

/** A place an image is written to, blob by blob; the tag appears only at `commit`. */
export interface ImageWriter {
  readonly ref: string;
  /** Whether the destination already holds this blob. */
  hasBlob(desc: Descriptor): Promise<boolean>;
  /** Streams a blob in, verifying it against `expected` when given. */
  putBlob(source: Readable, expected?: StoredBlob): Promise<StoredBlob>;
  /** Writes the bytes of a copy plan on a copy thread (places that keep blobs as files). */
  putPlan?(plan: AsyncIterable<Piece>, threads: CopyThreads): Promise<StoredBlob>;
  /** Makes a blob of `from` present here, by linking when both keep files. */
  copyBlob(from: ImageReader, desc: Descriptor): Promise<void>;
  /** Tags `top` (a manifest or index already written with putBlob) and makes the image visible. */
  commit(top: Descriptor): Promise<void>;
  /** Drops whatever is not committed (temp files); safe to call after commit. */
  abort(): Promise<void>;
}
