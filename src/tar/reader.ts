import { BlockportError } from '../errors.js';
import { ByteSource, type ByteReader } from './bytes.js';
import { BLOCK, applyPax, isZeroBlock, parseBlock, parsePax, type TarHeader } from './header.js';

/** Largest extension header (PAX or GNU long name) accepted: a DoS guard. */
const MAX_EXTENSION = 1 << 20;
/** Largest run of bytes accepted after the end-of-archive marker. */
const MAX_TAIL = 1 << 20;

export function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** One entry as it stands in the archive. Its body must be read, or it is skipped, before the next. */
export interface TarEntry {
  header: TarHeader;
  /** Every header byte of this entry as found: extension headers with their data, then its own block. */
  raw: Buffer;
  /** Offset of `raw` in the archive. */
  offset: number;
  /** The data bytes (header.size of them). */
  body(): AsyncGenerator<Buffer>;
  /** The padding after the data, as found; set once the body has been read to its end. */
  padding?: Buffer;
  /** True when `raw` holds a global PAX header, whose records also apply to later entries. */
  global: boolean;
}

/**
 * Streams a tar archive entry by entry, keeping each entry's raw header bytes so it can be
 * reproduced byte for byte. Handles ustar, PAX (local and global), GNU long names and base-256
 * numbers; refuses bad checksums, oversized extensions and truncation with ECORRUPT.
 */
export class TarReader {
  private readonly src: ByteReader;
  private global = new Map<string, Buffer>();
  /** Bytes after the last entry (the end-of-archive zero blocks and any record padding), once done. */
  tail?: Buffer;

  /** From a stream, buffers at hand, or a ByteReader (a FileBytes skips file data without reading it). */
  constructor(source: AsyncIterable<Buffer> | Iterable<Buffer> | ByteReader, readonly what = 'tar') {
    this.src = 'readExact' in source ? source : new ByteSource(source, what);
  }

  async *entries(): AsyncGenerator<TarEntry> {
    for (;;) {
      const offset = this.src.position;
      const rawParts: Buffer[] = [];
      let global = false;
      let pax: Map<string, Buffer> | undefined;
      let longName: string | undefined;
      let longLink: string | undefined;
      let h: TarHeader;
      for (;;) {
        const block = await this.src.read(BLOCK);
        if (block === null) {
          if (rawParts.length) throw new BlockportError('ECORRUPT', `${this.what}: truncated after an extension header`);
          this.tail = Buffer.alloc(0);
          return;
        }
        if (rawParts.length === 0 && isZeroBlock(block)) {
          this.tail = Buffer.concat([block, await this.src.rest(MAX_TAIL)]);
          return;
        }
        h = parseBlock(block);
        rawParts.push(Buffer.from(block));
        if (h.typeflag !== 'x' && h.typeflag !== 'g' && h.typeflag !== 'L' && h.typeflag !== 'K') break;
        if (h.size > MAX_EXTENSION) throw new BlockportError('ECORRUPT', `${this.what}: extension header of ${h.size} bytes is too large`);
        const padded = h.size + paddingOf(h.size);
        const data = Buffer.from(await this.src.readExact(padded));
        rawParts.push(data);
        const body = data.subarray(0, h.size);
        if (h.typeflag === 'x') pax = new Map([...(pax ?? []), ...parsePax(body)]);
        else if (h.typeflag === 'g') {
          this.global = new Map([...this.global, ...parsePax(body)]);
          global = true;
        }
        else if (h.typeflag === 'L') longName = cstr(body);
        else longLink = cstr(body);
      }
      const header = h;
      const own = rawParts.at(-1)!;
      if (longName !== undefined) header.path = longName;
      if (longLink !== undefined) header.linkname = longLink;
      if (pax || this.global.size > 0) applyPax(header, this.global.size === 0 ? pax! : new Map([...this.global, ...(pax ?? [])]));
      if (header.typeflag === 'S' && own[482] !== 0) {
        throw new BlockportError('EUNSUPPORTED', `${this.what}: old GNU sparse entry ${header.path} with extension blocks`);
      }
      const entry = this.makeEntry(header, rawParts.length === 1 ? own : Buffer.concat(rawParts), offset, global);
      yield entry;
      if (!entry.padding) await this.finish(entry);
    }
  }
  /** Bytes of each entry's body handed out so far (what `finish` must skip). */
  private consumed = 0;

  private makeEntry(header: TarHeader, raw: Buffer, offset: number, global: boolean): TarEntry {
    const src = this.src;
    const self = this;
    this.consumed = 0;
    const entry: TarEntry = {
      header,
      raw,
      offset,
      global,
      async *body() {
        if (self.consumed > 0) throw new Error('tar entry body read twice');
        for await (const chunk of src.take(header.size)) {
          self.consumed += chunk.length;
          yield chunk;
        }
        entry.padding = Buffer.from(await src.readExact(paddingOf(header.size)));
      },
    };
    return entry;
  }

  private async finish(entry: TarEntry): Promise<void> {
    await this.src.skip(entry.header.size - this.consumed);
    entry.padding = Buffer.from(await this.src.readExact(paddingOf(entry.header.size)));
  }
}

function cstr(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul === -1 ? b.length : nul).toString('utf8');
}
