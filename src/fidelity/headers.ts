/** What a gzip member header (RFC 1952) says, and how long it is. */
export interface GzipHeader {
  /** Header length in bytes: the deflate stream starts there. */
  length: number;
  flags: number;
  mtime: number;
  /** 2: the compressor used its slowest level, 4: its fastest; 0 otherwise (zlib, GNU gzip and Go agree). */
  xfl: number;
  /** 3: Unix (GNU gzip, zlib, Node); 255: unknown, which Go's compress/gzip and pgzip write. */
  os: number;
  name?: string;
}

const FTEXT = 1;
const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

/** Parses the gzip header at the start of `head`; undefined when `head` is not one or is cut short. */
export function parseGzipHeader(head: Buffer): GzipHeader | undefined {
  if (head.length < 10 || head[0] !== 0x1f || head[1] !== 0x8b || head[2] !== 8) return undefined;
  const flags = head[3];
  if (flags & ~(FTEXT | FHCRC | FEXTRA | FNAME | FCOMMENT)) return undefined;
  let at = 10;
  if (flags & FEXTRA) {
    if (head.length < at + 2) return undefined;
    at += 2 + head.readUInt16LE(at);
  }
  let name: string | undefined;
  const zstring = () => {
    const end = head.indexOf(0, at);
    if (end < 0) return undefined;
    const s = head.subarray(at, end).toString('latin1');
    at = end + 1;
    return s;
  };
  if (flags & FNAME && (name = zstring()) === undefined) return undefined;
  if (flags & FCOMMENT && zstring() === undefined) return undefined;
  if (flags & FHCRC) at += 2;
  if (at > head.length) return undefined;
  return { length: at, flags, mtime: head.readUInt32LE(4), xfl: head[8], os: head[9], name };
}

/** What a zstd frame header (RFC 8878) says about the compressor's settings. */
export interface ZstdFrameHeader {
  contentSize: boolean;
  checksum: boolean;
  /** log2 of the window, when the frame gives one (not single-segment). */
  windowLog?: number;
  dictionary: boolean;
}

/** Parses a zstd frame header; undefined when `head` is not a zstd frame. */
export function parseZstdHeader(head: Buffer): ZstdFrameHeader | undefined {
  if (head.length < 6 || head.readUInt32LE(0) !== 0xfd2fb528) return undefined;
  const fhd = head[4];
  const singleSegment = (fhd >> 5) & 1;
  const fcsFlag = fhd >> 6;
  return {
    contentSize: fcsFlag !== 0 || singleSegment === 1,
    checksum: ((fhd >> 2) & 1) === 1,
    windowLog: singleSegment ? undefined : 10 + (head[5] >> 3),
    dictionary: (fhd & 3) !== 0,
  };
}
