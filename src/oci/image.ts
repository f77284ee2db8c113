import type { Readable } from 'node:stream';
import type { StoredBlob } from '../cas/blob-store.js';
import type { CopyThreads, FileRange, Piece } from '../cas/copy-plan.js';
import type { Digest } from '../digest/digest.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from './types.js';

/**
 * An image opened for reading, wherever it lives: a layout, an archive, the store, a registry.
 * Every transport implements all of it; what differs is only where the bytes are.
 */
export interface ImageReader {
  /** The reference it was opened from, for messages. */
  readonly ref: string;
  /** What the reference names (a transport manifest, index or manifest), as a bare descriptor (no ref-name annotation). */
  readonly top: Descriptor;
  /** The index the reference named, when it named one (block-form images are tagged as an index). */
  readonly index?: { descriptor: Descriptor; index: ImageIndex; bytes: Buffer };
  /** The image manifest (for a block-form image, the one with `blocks`). */
  readonly manifest: ImageManifest;
  readonly manifestBytes: Buffer;
  readonly manifestDescriptor: Descriptor;
  readonly config: ImageConfig;
  readonly configBytes: Buffer;
  /** The transport manifest a block-form manifest was read through (docs/spec.md 5.1); its layers include the kept source blobs. */
  readonly transport?: { descriptor: Descriptor; manifest: ImageManifest; bytes: Buffer };
  /** A small blob (index, manifest, config) this image reaches, read whole and verified. */
  readBlob(desc: Descriptor): Promise<Buffer>;
  /** A verified stream of a blob this image reaches. */
  openBlob(desc: Descriptor): Promise<Readable>;
  /**
   * Where a blob's bytes lie, unchanged, in a plain file (a layout's blob file, an archive
   * member), or undefined when they do not (a registry) or the blob is absent. Bytes read from a
   * spot are not verified: callers check what they take (a diff_id, a digest) themselves.
   */
  locate(desc: Descriptor): Promise<FileSpot | undefined>;
  /** Block-form layers of this place already seen to splice into their diff_id (the store keeps them). */
  readonly records: LayerRecords;
  close(): Promise<void>;
}

/** How to open an image reference. */
export interface OpenOptions {
  /**
   * Of an index, the image to open: the one for this platform, or `any` (the host's when the
   * index lists it, else its first: for callers that then take every platform). Default: the
   * host's, and ambiguity refused.
   */
  platform?: Platform | 'any';
}

/**
 * A record of block-form layers whose spliced bytes were hashed and matched their diff_id, kept
 * by a place whose blobs cannot change unseen (the store: docs/spec.md 11.1).
 */
export interface LayerRecords {
  has(layer: Digest, diffId: Digest): Promise<boolean>;
  /** Records the layer, and keeps the plan `keepPlan` gathered for it (if any). */
  record(layer: Digest, diffId: Digest): Promise<void>;
  /** The copy plan kept for a recorded layer whose standard tar has `size` bytes, or undefined. */
  plan(layer: Digest, size: number): Promise<AsyncIterable<Piece> | undefined>;
  /**
   * Passes a layer's copy plan through, gathering it to keep: once the plan ends when the layer
   * is `recorded` already, else when `record` names it.
   */
  keepPlan(layer: Digest, pieces: AsyncIterable<Piece>, sourceOf: SourceOf, recorded: boolean): AsyncIterable<Piece>;
  /** Forgets plans gathered for layers that were not recorded. */
  dropPending(): Promise<void>;
}

/** Which blob a planned file range lies in: its digest and the offset where it starts in the file. */
export type SourceOf = (path: string) => { digest: Digest; offset: number } | undefined;

/** Places that keep no records: every layer is hashed every time. */
export const NO_RECORDS: LayerRecords = {
  has: async () => false,
  record: async () => {},
  plan: async () => undefined,
  keepPlan: (_layer, pieces) => pieces,
  dropPending: async () => {},
};

/** Where a blob lies: `size` bytes at `offset` of the file `path`. */
export interface FileSpot extends FileRange {
  /**
   * True when the file is the blob itself, named by its digest in a blob folder that verified it
   * on the way in (a layout or the store): it may be hard-linked into another such folder.
   */
  blobFile: boolean;
}

/** A place an image is written to, blob by blob; the tag appears only at `commit`. */
export interface ImageWriter {
  readonly ref: string;
  /** Whether the destination already holds this blob. */
  hasBlob(desc: Descriptor): Promise<boolean>;
  /** Streams a blob in, verifying it against `expected` when given. */
  putBlob(source: Readable, expected?: StoredBlob): Promise<StoredBlob>;
  /**
   * Writes the bytes of a copy plan (file ranges and bytes at hand) as one blob, on a copy thread;
   * with `expected`, refuses (and keeps nothing) if they do not match.
   */
  putPlan(plan: AsyncIterable<Piece>, threads: CopyThreads, expected?: StoredBlob): Promise<StoredBlob>;
  /** Makes a blob of `from` present here: linked when both keep blob files, else copied and verified. */
  copyBlob(from: ImageReader, desc: Descriptor): Promise<void>;
  /** Tags `top` (a manifest or index already written with putBlob) and makes the image visible. */
  commit(top: Descriptor): Promise<void>;
  /** Drops whatever is not committed (temp files); safe to call after commit. */
  abort(): Promise<void>;
}
