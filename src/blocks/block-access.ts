import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore, openFile } from '../cas/blob-store.js';
import { Hasher, type Digest } from '../digest/digest.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { FileBytes } from '../tar/bytes.js';
import type { FileSpot, ImageReader } from '../oci/image.js';
import type { Descriptor } from '../oci/types.js';
import type { TarHeader } from '../tar/header.js';
import { cleanPath } from '../tar/path.js';
import { isUtf8Name, nameBytes } from '../tar/names.js';
import { TarReader } from '../tar/reader.js';
import { encodeHeader } from '../tar/writer.js';

/** The entry types a folder block may hold (docs/spec.md 3.3). */
const FOLDER_TYPES = new Set(['file', 'dir', 'symlink', 'char', 'block', 'fifo']);

/**
 * Folder-block indexes kept at once (least recently used dropped): keeping all of them grows with
 * the image's file count (every member's header), and a layer's imports of one block come
 * together, so a few suffice. (On the node bench bundle, 229 packages, apply's peak did not move.)
 */
const DIR_INDEXES = 32;

/** Where each member of a folder block sits inside it. */
export interface DirMember {
  header: TarHeader;
  /** Offset of the member's data in the block. */
  offset: number;
}

/**
 * Reads blocks for materialize: file blocks and folder-block members by byte range, from where the
 * source keeps them (a layout's or the store's blob files, an archive's members). Blocks the
 * source does not keep in a file (a registry) are first copied, verified, into a temp store.
 */
export class BlockAccess {
  private readonly dirIndexes = new Map<Digest, Map<string, DirMember>>();
  private tmp?: string;
  private byPath?: Map<string, { digest: Digest; offset: number } | null>;

  private constructor(
    private readonly spots: Map<Digest, FileSpot>,
    readonly blocks: Map<Digest, Descriptor>,
  ) {}

  static async for(src: ImageReader): Promise<BlockAccess> {
    const blocks = new Map((src.manifest.blocks ?? []).map((b) => [b.digest, b] as const));
    const spots = new Map<Digest, FileSpot>();
    const elsewhere: Descriptor[] = [];
    for (const b of blocks.values()) {
      const spot = await src.locate(b);
      if (spot) spots.set(b.digest, spot);
      else elsewhere.push(b);
    }
    const access = new BlockAccess(spots, blocks);
    if (elsewhere.length === 0) return access;
    access.tmp = await fsp.mkdtemp(join(tmpdir(), 'blockport-blocks-'));
    const store = new FsBlobStore(access.tmp);
    const missing: Digest[] = [];
    try {
      for (const b of elsewhere) {
        try {
          await store.put(await src.openBlob(b), { digest: b.digest, size: b.size });
          spots.set(b.digest, (await store.locate(b))!);
        } catch (err) {
          if (!(err instanceof BlockportError && err.code === 'EMISSING')) throw err;
          missing.push(b.digest);
        }
      }
      if (missing.length) {
        throw new BlockportError('EMISSING', `${src.ref}: ${missing.length} block(s) missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`, { subject: missing[0] });
      }
    } catch (err) {
      await access.close();
      throw err;
    }
    return access;
  }

  /** The manifest's descriptor of a block an import names; it must be of the kind the import needs. */
  descriptor(digest: Digest, where: string, mediaType?: string): Descriptor {
    const d = this.blocks.get(digest);
    if (!d) throw new BlockportError('EMISSING', `${where}: imports block ${digest}, which the manifest does not list`, { subject: digest });
    if (mediaType && d.mediaType !== mediaType) {
      throw new BlockportError('ECORRUPT', `${where}: block ${digest} is a ${d.mediaType}, not a ${mediaType}`, { subject: digest });
    }
    return d;
  }

  /**
   * Where a block's bytes are, for reading ranges of it. They are not hashed when read: the
   * layer's diff_id check covers every byte taken (see materialize), and finds a corrupt block.
   */
  spotOf(d: Descriptor): FileSpot {
    return this.spots.get(d.digest)!;
  }

  /**
   * The block that lies in file `path` and where it starts there (a plan's ranges named by
   * digest); undefined for a file that holds no block or more than one (an archive's).
   */
  blockAt(path: string): { digest: Digest; offset: number } | undefined {
    if (!this.byPath) {
      this.byPath = new Map();
      for (const [digest, spot] of this.spots) this.byPath.set(spot.path, this.byPath.has(spot.path) ? null : { digest, offset: spot.offset });
    }
    return this.byPath.get(path) ?? undefined;
  }

  /** The members of a folder block by relative path (headers only kept; the last DIR_INDEXES blocks' are cached). */
  async dirIndex(d: Descriptor): Promise<Map<string, DirMember>> {
    let idx = this.dirIndexes.get(d.digest);
    if (idx) {
      // the most recently used last: imports of one block come together
      this.dirIndexes.delete(d.digest);
      this.dirIndexes.set(d.digest, idx);
      return idx;
    }
    idx = new Map();
    // headers only: member data is skipped, not read (the diff_id check covers what is taken)
    const spot = this.spotOf(d);
    const fh = await openSpot(spot, d.digest);
    try {
      await this.indexDir(d, new TarReader(new FileBytes(fh.fd, d.size, `block ${d.digest}`, spot.offset), `block ${d.digest}`), idx);
    } finally {
      await fh.close();
    }
    this.dirIndexes.set(d.digest, idx);
    if (this.dirIndexes.size > DIR_INDEXES) this.dirIndexes.delete(this.dirIndexes.keys().next().value!);
    return idx;
  }

  private async indexDir(d: Descriptor, reader: TarReader, idx: Map<string, DirMember>): Promise<void> {
    let prev: Buffer | undefined;
    for await (const e of reader.entries()) {
      const h = e.header;
      const rel = cleanPath(h.path, `block ${d.digest}`);
      // a folder block has one spelling (docs/spec.md 3.3): UTF-8 names of the allowed types,
      // re-encoded and compared, in sorted order
      const name = nameBytes(h.path);
      const allowed = FOLDER_TYPES.has(h.type) && !e.global && isUtf8Name(h.path) && isUtf8Name(h.linkname);
      const canonical = allowed && encodeHeader({ path: rel, type: h.type, size: h.size, mode: h.mode, linkname: h.linkname, devmajor: h.devmajor, devminor: h.devminor });
      if (rel === '' || !canonical || !canonical.equals(e.raw) || (prev && Buffer.compare(prev, name) >= 0)) {
        throw new BlockportError('ECORRUPT', `block ${d.digest}: not a canonical folder block (at ${JSON.stringify(h.path)})`, { subject: d.digest });
      }
      prev = name;
      idx.set(rel, { header: h, offset: e.offset + e.raw.length });
    }
  }

  /** Re-hashes blocks to name a corrupt one (used after a diff_id mismatch). */
  async findCorrupt(digests: Iterable<Digest>): Promise<Digest | undefined> {
    for (const dg of digests) {
      const d = this.blocks.get(dg);
      if (!d) continue;
      const spot = this.spotOf(d);
      const h = new Hasher();
      try {
        if (d.size > 0) for await (const chunk of openFile(spot.path, spot.offset, spot.offset + d.size - 1)) h.update(chunk);
      } catch {
        return dg;
      }
      if (h.size !== d.size || h.digest() !== d.digest) return dg;
    }
    return undefined;
  }

  async close(): Promise<void> {
    if (this.tmp) await fsp.rm(this.tmp, { recursive: true, force: true });
  }
}

/** Opens the file a spot lies in; EMISSING when it is gone (a blob removed under us). */
async function openSpot(spot: FileSpot, digest: Digest): Promise<fsp.FileHandle> {
  return fsp.open(spot.path, 'r').catch((err) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlockportError('EMISSING', `blob ${digest} is missing (${spot.path})`, { subject: digest });
    throw fromSystemError(err, spot.path);
  });
}
