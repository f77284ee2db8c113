import { BlockportError } from '../errors.js';
import { ByteSource } from './bytes.js';
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
  private readonly src: ByteSource;
  private global = new Map<string, Buffer>();
  /** Bytes after the last entry (the end-of-archive zero blocks and any record padding), once done. */
  tail?: Buffer;

  constructor(source: AsyncIterable<Buffer>, readonly what = 'tar') {
    this.src = new ByteSource(source, what);
  }

  async *entries(): AsyncGenerator<TarEntry> {
    for (;;) {
      const offset = this.src.position;
      const rawParts: Buffer[] = [];
      let global = false;
      let pax: Map<string, Buffer> | undefined;
      let longName: string | undefined;
      let longLink: string | undefined;
      let block: Buffer | null;
      for (;;) {
        block = await this.src.read(BLOCK);
        if (block === null) {
          if (rawParts.length) throw new BlockportError('ECORRUPT', `${this.what}: truncated after an extension header`);
          this.tail = Buffer.alloc(0);
          return;
        }
        if (isZeroBlock(block) && rawParts.length === 0) {
          this.tail = Buffer.concat([block, await this.src.rest(MAX_TAIL)]);
          return;
        }
        const b = Buffer.from(block);
        const h = parseBlock(b);
        rawParts.push(b);
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
      const base = parseBlock(block);
      const header: TarHeader = { ...base, pax: new Map() };
      if (longName !== undefined) header.path = longName;
      if (longLink !== undefined) header.linkname = longLink;
      applyPax(header, this.global.size === 0 ? (pax ?? new Map()) : new Map([...this.global, ...(pax ?? [])]));
      if (base.typeflag === 'S' && block[482] !== 0) {
        throw new BlockportError('EUNSUPPORTED', `${this.what}: old GNU sparse entry ${header.path} with extension blocks`);
      }
      const entry = this.makeEntry(header, Buffer.concat(rawParts), offset, global);
      yield entry;
      if (!entry.padding) await this.finish(entry);
    }
  }

  private state = new WeakMap<TarEntry, { consumed: number }>();

  private makeEntry(header: TarHeader, raw: Buffer, offset: number, global: boolean): TarEntry {
    const src = this.src;
    const self = this;
    const entry: TarEntry = {
      header,
      raw,
      offset,
      global,
      async *body() {
        const st = self.state.get(entry)!;
        if (st.consumed > 0) throw new Error('tar entry body read twice');
        for await (const chunk of src.take(header.size)) {
          st.consumed += chunk.length;
          yield chunk;
        }
        entry.padding = Buffer.from(await src.readExact(paddingOf(header.size)));
      },
    };
    this.state.set(entry, { consumed: 0 });
    return entry;
  }

  private async finish(entry: TarEntry): Promise<void> {
    const st = this.state.get(entry)!;
    await this.src.skip(entry.header.size - st.consumed);
    entry.padding = Buffer.from(await this.src.readExact(paddingOf(entry.header.size)));
  }
}

function cstr(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul === -1 ? b.length : nul).toString('utf8');
}
