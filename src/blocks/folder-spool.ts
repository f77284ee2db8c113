import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { openFile } from '../cas/blob-store.js';
import type { TarHeader } from '../tar/header.js';
import { END_OF_ARCHIVE, encodeHeader, padding } from '../tar/writer.js';

/** One entry of a folder being collected for a folder block. */
export interface SpooledMember {
  rel: string;
  header: TarHeader;
  raw: Buffer;
  /** Where its data sits in the spool file. */
  offset: number;
  padding: Buffer;
}

/**
 * Collects the contiguous entries of one folder while blockify streams a layer: headers in
 * memory (small), data in a temp file, so a package of any size never sits in memory. Then writes
 * the folder's canonical tar (docs/spec.md, "Blocks") or gives the entries back unchanged.
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

  async add(rel: string, header: TarHeader, raw: Buffer, body: AsyncIterable<Buffer>, pad: () => Buffer): Promise<void> {
    const offset = this.size;
    for await (const chunk of body) {
      await this.fh!.write(chunk, 0, chunk.length, this.size);
      this.size += chunk.length;
    }
    const p = pad();
    this.members.push({ rel, header, raw, offset, padding: p });
    if (this.seen.has(rel)) this.refused = `duplicate entry ${rel}`;
    this.seen.add(rel);
    if (p.some((b) => b !== 0)) this.refused = `non-zero padding after ${rel}`;
  }

  /** One member's data, read back from the spool file. */
  async *data(m: SpooledMember): AsyncGenerator<Buffer> {
    if (m.header.size === 0) return;
    yield* openFile(this.file, m.offset, m.offset + m.header.size - 1) as AsyncIterable<Buffer>;
  }

  /** The canonical folder tar: members below the folder, sorted by path, owners and times zeroed. */
  canonical(): Readable {
    // sorted by the name as written, "/" included for folders (docs/spec.md 3.3): "lib.d.ts" < "lib/"
    const written = (m: SpooledMember) => Buffer.from(m.header.type === 'dir' ? `${m.rel}/` : m.rel);
    const sorted = this.members.filter((m) => m.rel !== '.').sort((a, b) => Buffer.compare(written(a), written(b)));
    const self = this;
    return Readable.from((async function* () {
      for (const m of sorted) {
        const h = m.header;
        yield encodeHeader({ path: m.rel, type: h.type, size: h.size, mode: h.mode & 0o7777, linkname: h.linkname, devmajor: h.devmajor, devminor: h.devminor });
        yield* self.data(m);
        yield padding(h.size);
      }
      yield END_OF_ARCHIVE;
    })(), { objectMode: false });
  }

  /** The members exactly as they stood in the layer: raw headers, data, padding. */
  async *original(): AsyncGenerator<Buffer> {
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
