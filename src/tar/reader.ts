import { BlockportError } from '../errors.js';
import { CHUNK } from '../chunk.js';
import { ByteSource, type ByteReader } from './bytes.js';
import { BLOCK, completeHeader, isGnuLayout, isZeroBlock, parseBlock, parsePax, sparseExtended, zeroChunks, type TarHeader } from './header.js';
import { nameOf } from './names.js';

/** Largest extension header (PAX, global PAX or GNU long name) accepted: Go's maxSpecialFileSize. */
export const MAX_EXTENSION = 1 << 20;
/**
 * Most header bytes one entry may have (its extension headers, sparse blocks and own block). Go
 * reads 200 chained 1 MiB PAX headers keeping only the last; blockport keeps every header byte
 * for splicing, so it refuses the chain rather than hold it.
 */
export const MAX_ENTRY_HEADERS = 2 * MAX_EXTENSION + 16 * BLOCK;
/** Largest run of bytes after the end-of-archive marker that is not all zero (a zero run may be of any length). */
export const MAX_TAIL = 1 << 20;

export function paddingOf(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** One entry as it stands in the archive. Its body must be read, or it is skipped, before the next. */
export interface TarEntry {
  header: TarHeader;
  /** Every header byte of this entry as found: extension headers with their data, then its own block(s). */
  raw: Buffer;
  /** Offset of `raw` in the archive. */
  offset: number;
  /** The data bytes (header.size of them). */
  body(): AsyncGenerator<Buffer>;
  /** The padding after the data, as found; set once the body has been read to its end. */
  padding?: Buffer;
  /**
   * True for a PAX global header ('g'), which is an entry of its own, as in Go: `raw` holds it
   * and its records (and any extension header before it, which then applies to nothing), it has
   * no body, and its records apply to no other entry.
   */
  global: boolean;
}

function corrupt(what: string, why: string): BlockportError {
  return new BlockportError('ECORRUPT', `${what}: ${why}`);
}

/**
 * Streams a tar archive entry by entry, keeping each entry's raw header bytes so it can be
 * reproduced byte for byte. It sees the entries Go's archive/tar sees (what docker and
 * containerd unpack), or refuses the input: ustar, PAX, GNU long names, old GNU sparse headers,
 * base-256 numbers; header-only types carry no data; global headers apply to nothing. Bad
 * checksums, oversized extensions and truncation are ECORRUPT.
 */
export class TarReader {
  private readonly src: ByteReader;
  /**
   * The bytes after the last entry: the end-of-archive marker and whatever follows it, or the
   * first MAX_TAIL of them when more follow, all zero (`tailZeros` counts the rest).
   */
  tail?: Buffer;
  /** Zero bytes after `tail` (record padding of `tar -b` beyond MAX_TAIL). */
  tailZeros = 0;

  /** From a stream, buffers at hand, or a ByteReader (a FileBytes skips file data without reading it). */
  constructor(source: AsyncIterable<Buffer> | Iterable<Buffer> | ByteReader, readonly what = 'tar') {
    this.src = 'readExact' in source ? source : new ByteSource(source, what);
  }

  /** The tail in chunks: `tail`, then `tailZeros` zero bytes. */
  *tailChunks(): Generator<Buffer> {
    yield this.tail!;
    yield* zeroChunks(this.tailZeros);
  }

  async *entries(): AsyncGenerator<TarEntry> {
    for (;;) {
      const offset = this.src.position;
      const raw: Buffer[] = [];
      let rawSize = 0;
      const keep = (b: Buffer): Buffer => {
        rawSize += b.length;
        if (rawSize > MAX_ENTRY_HEADERS) throw new BlockportError('EUNSUPPORTED', `${this.what}: more than ${MAX_ENTRY_HEADERS} bytes of headers for one entry at byte ${offset}`);
        const copy = Buffer.from(b);
        raw.push(copy);
        return copy;
      };
      let pax: Map<string, Buffer> | undefined;
      let longName: string | undefined;
      let longLink: string | undefined;
      let block: Buffer;
      let h: TarHeader;
      for (;;) {
        const b = await this.src.read(BLOCK);
        if (b === null) {
          if (raw.length) throw corrupt(this.what, 'truncated after an extension header');
          this.tail = Buffer.alloc(0);
          return;
        }
        if (isZeroBlock(b)) {
          // extension headers then the end marker: Go ends the archive there and so does blockport
          await this.readTail(raw, b);
          return;
        }
        h = parseBlock(b);
        block = keep(b);
        if (h.typeflag !== 'x' && h.typeflag !== 'g' && h.typeflag !== 'L' && h.typeflag !== 'K') break;
        const body = await this.extension(h, keep);
        if (h.typeflag === 'x') pax = parsePax(body); // a second one replaces the first, as in Go
        else if (h.typeflag === 'L') longName = cstr(body);
        else if (h.typeflag === 'K') longLink = cstr(body);
        else {
          h.pax = parsePax(body);
          yield this.headerOnly(h, raw, offset, true);
          break;
        }
      }
      if (h.typeflag === 'g') continue;
      completeHeader(h, pax, longName, longLink);
      if (h.typeflag === 'S') await this.sparseBlocks(block, keep);
      const entry = this.makeEntry(h, raw.length === 1 ? raw[0] : Buffer.concat(raw), offset);
      yield entry;
      if (!entry.padding) await this.finish(entry);
    }
  }

  /** The data of an extension header (read with its padding into the raw bytes); at most MAX_EXTENSION. */
  private async extension(h: TarHeader, keep: (b: Buffer) => Buffer): Promise<Buffer> {
    // Go refuses these too (ErrFieldTooLong): no runtime could unpack the layer
    if (h.size > MAX_EXTENSION) throw corrupt(this.what, `extension header '${h.typeflag}' of ${h.size} bytes (more than ${MAX_EXTENSION})`);
    return keep(await this.src.readExact(h.size + paddingOf(h.size))).subarray(0, h.size);
  }

  /** Old GNU sparse headers may be followed by blocks of more sparse map: header bytes, kept in raw. */
  private async sparseBlocks(block: Buffer, keep: (b: Buffer) => Buffer): Promise<void> {
    if (!isGnuLayout(block)) throw corrupt(this.what, 'sparse entry (typeflag S) without a GNU header');
    for (let b = block, first = true; sparseExtended(b, first); first = false) b = keep(await this.src.readExact(BLOCK));
  }

  /**
   * After the first zero block: Go wants a second one (a zero block then a header is an error),
   * then stops reading. The rest is kept for splicing: up to MAX_TAIL of any bytes, any length
   * of zeros (`tar -b 4096` pads to 2 MiB records).
   */
  private async readTail(before: Buffer[], zero: Buffer): Promise<void> {
    const parts = [...before, Buffer.from(zero)];
    const second = await this.src.read(BLOCK);
    if (second !== null && !isZeroBlock(second)) throw corrupt(this.what, `a header after a single zero block at byte ${this.src.position - 2 * BLOCK} (damaged end-of-archive marker)`);
    if (second) parts.push(Buffer.from(second));
    let kept = parts.reduce((n, p) => n + p.length, 0);
    const limit = MAX_TAIL + kept - 2 * BLOCK;
    let allZero = before.length === 0;
    for (;;) {
      const b = await this.src.readUpTo(CHUNK);
      if (b.length === 0) break;
      const zeros = isZeroBlock(b);
      if (this.tailZeros === 0 && kept + b.length <= limit) {
        parts.push(Buffer.from(b));
        kept += b.length;
        allZero &&= zeros;
        continue;
      }
      if (!allZero || !zeros) throw corrupt(this.what, `more than ${MAX_TAIL} bytes after the end-of-archive marker that are not all zero`);
      this.tailZeros += b.length;
    }
    this.tail = Buffer.concat(parts);
  }

  /** An entry without a body (a global header). */
  private headerOnly(h: TarHeader, raw: Buffer[], offset: number, global: boolean): TarEntry {
    const header: TarHeader = { ...h, type: 'other', size: 0 };
    return { header, raw: raw.length === 1 ? raw[0] : Buffer.concat(raw), offset, global, padding: Buffer.alloc(0), body: async function* () {} };
  }

  /** Bytes of each entry's body handed out so far (what `finish` must skip). */
  private consumed = 0;

  private makeEntry(header: TarHeader, raw: Buffer, offset: number): TarEntry {
    const src = this.src;
    const self = this;
    this.consumed = 0;
    const entry: TarEntry = {
      header,
      raw,
      offset,
      global: false,
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

/** A GNU long name or link: the bytes up to the first NUL (Go's parseString), kept exact. */
function cstr(b: Buffer): string {
  const nul = b.indexOf(0);
  return nameOf(b.subarray(0, nul === -1 ? b.length : nul));
}
