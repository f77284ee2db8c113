import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { FileRange, Piece } from '../cas/copy-plan.js';
import type { TarHeader } from '../tar/header.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';

/** One entry of a folder being collected for a folder block. */
export interface SpooledMember {
  rel: string;
  header: TarHeader;
  raw: Buffer;
  /** Where its data is: in the spool file, or in the layer's own file when blockify reads by position. */
  data: FileRange;
  padding: Buffer;
}

/**
 * Collects the contiguous entries of one folder while blockify streams a layer: headers in
 * memory (small), data in a temp file, so a package of any size never sits in memory (data that
 * is already a range of a file is only noted). Then gives the folder's canonical tar (docs/spec.md,
 * "Blocks") or the entries unchanged, as copy-plan pieces.
 */
export class FolderSpool {
  readonly members: SpooledMember[] = [];
  private fh?: fsp.FileHandle;
  private size = 0;
  /** Set when the folder cannot become a block; its entries are then emitted as they were. */
  refused?: string;
  private readonly seen = new Set<string>();

  constructor(
    readonly folder: string,
    private readonly file: string,
  ) {}

  static async create(folder: string, tmpDir: string, n: number): Promise<FolderSpool> {
    const s = new FolderSpool(folder, join(tmpDir, `spool-${n}`));
    s.fh = await fsp.open(s.file, 'w+');
    return s;
  }

  async add(rel: string, header: TarHeader, raw: Buffer, body: AsyncIterable<Piece>, pad: () => Buffer): Promise<void> {
    const offset = this.size;
    let range: FileRange | undefined;
    for await (const piece of body) {
      if (!Buffer.isBuffer(piece)) {
        if (range || this.size !== offset) throw new Error('a spooled body is one range or only bytes');
        range = piece;
        continue;
      }
      await this.fh!.write(piece, 0, piece.length, this.size);
      this.size += piece.length;
    }
    const p = pad();
    this.members.push({ rel, header, raw, data: range ?? { path: this.file, offset, size: this.size - offset }, padding: p });
    if (this.seen.has(rel)) this.refused = `duplicate entry ${rel}`;
    this.seen.add(rel);
    if (p.some((b) => b !== 0)) this.refused = `non-zero padding after ${rel}`;
  }

  /** One member's data. */
  async *data(m: SpooledMember): AsyncGenerator<Piece> {
    if (m.data.size > 0) yield m.data;
  }

  /** The canonical folder tar: members below the folder, sorted by path, owners and times zeroed. */
  async *canonical(): AsyncGenerator<Piece> {
    // sorted by the name as written, "/" included for folders (docs/spec.md 3.3): "lib.d.ts" < "lib/"
    const written = (m: SpooledMember) => Buffer.from(m.header.type === 'dir' ? `${m.rel}/` : m.rel);
    const sorted = this.members.filter((m) => m.rel !== '.').sort((a, b) => Buffer.compare(written(a), written(b)));
    for (const m of sorted) {
      const h = m.header;
      yield encodeHeader({ path: m.rel, type: h.type, size: h.size, mode: h.mode & 0o7777, linkname: h.linkname, devmajor: h.devmajor, devminor: h.devminor });
      yield* this.data(m);
      yield padding(h.size);
    }
    yield END_OF_ARCHIVE;
  }

  /** The members exactly as they stood in the layer: raw headers, data, padding. */
  async *original(): AsyncGenerator<Piece> {
    for (const m of this.members) {
      yield m.raw;
      yield* this.data(m);
      yield m.padding;
    }
  }

  async close(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
    await fsp.rm(this.file, { force: true });
  }
}
