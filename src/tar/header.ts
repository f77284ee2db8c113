import { BlockportError } from '../errors.js';

export const BLOCK = 512;

export type TarType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo' | 'contiguous' | 'other';

/** One entry's metadata after applying PAX and GNU extension headers. */
export interface TarHeader {
  path: string;
  type: TarType;
  /** The raw typeflag character ('0', '5', ...). */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header in the archive. */
  size: number;
  /** Seconds since the epoch (fractional when PAX says so). */
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** PAX records of this entry (global ones merged in), values as raw bytes. */
  pax: Map<string, Buffer>;
}

const TYPES: Record<string, TarType> = {
  '0': 'file', '\0': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo', '7': 'contiguous',
};

export function typeOf(flag: string): TarType {
  return TYPES[flag] ?? 'other';
}

/** A NUL-terminated field, without making a Buffer view (headers are parsed by the hundred thousand). */
function cstring(b: Buffer, off: number, len: number): string {
  let end = off;
  const stop = off + len;
  while (end < stop && b[end] !== 0) end++;
  if (end === off) return '';
  // plain ASCII (nearly every name) is latin1 too, and that decode is the cheaper one
  for (let i = off; i < end; i++) if (b[i] > 0x7f) return b.toString('utf8', off, end);
  return b.toString('latin1', off, end);
}

/**
 * The common spelling, parsed without making strings: optional leading spaces/NULs, octal digits,
 * then only spaces/NULs. -1 for anything else (the careful parser below decides).
 */
function octal(b: Buffer, off: number, len: number): number {
  const end = off + len;
  let i = off;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) return -1;
  return digits <= 17 ? v : -1;
}

/**
 * Octal, or GNU base-256 when the high bit of the first byte is set. Only mtime may be negative
 * (GNU tar writes files older than 1970 as two's complement base-256).
 */
function numeric(b: Buffer, off: number, len: number, what: string, signed = false): number {
  if (!(b[off] & 0x80)) {
    const fast = octal(b, off, len);
    if (fast >= 0) return fast;
  }
  const field = b.subarray(off, off + len);
  if (field[0] & 0x80) {
    if (field[0] & 0x40) {
      if (!signed) throw new BlockportError('ECORRUPT', `tar header: negative base-256 ${what}`);
      const v = BigInt(`0x${field.toString('hex')}`) - (1n << BigInt(8 * len));
      if (v < BigInt(Number.MIN_SAFE_INTEGER)) throw new BlockportError('ECORRUPT', `tar header: ${what} too small`);
      return Number(v);
    }
    let v = field[0] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + field[i];
    if (!Number.isSafeInteger(v)) throw new BlockportError('ECORRUPT', `tar header: ${what} too large`);
    return v;
  }
  const s = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[ \0]+/, '').split('\0')[0].trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new BlockportError('ECORRUPT', `tar header: invalid ${what} field ${JSON.stringify(s)}`);
  return Number.parseInt(s, 8);
}

export function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Whether `stored` is the block's checksum: unsigned bytes, or signed ones as some old tars wrote (GNU tar and Go accept both). */
function checksumMatches(b: Buffer, stored: number): boolean {
  let unsigned = 8 * 32; // the checksum field counts as spaces
  let high = 0; // bytes above 127, which the signed sum counts 256 less
  for (let i = 0; i < 148; i++) {
    unsigned += b[i];
    if (b[i] > 127) high++;
  }
  for (let i = 156; i < BLOCK; i++) {
    unsigned += b[i];
    if (b[i] > 127) high++;
  }
  return stored === unsigned || stored === unsigned - 256 * high;
}

/** Parses one 512-byte header block (no extensions applied: `pax` is empty). Verifies the checksum. */
export function parseBlock(b: Buffer): TarHeader {
  const stored = numeric(b, 148, 8, 'checksum');
  if (!checksumMatches(b, stored)) throw new BlockportError('ECORRUPT', 'tar header: checksum mismatch (not a tar file, or corrupt)');
  const magic = b.toString('latin1', 257, 263);
  let name = cstring(b, 0, 100);
  if (magic === 'ustar\0' || magic === 'ustar ') {
    const prefix = magic === 'ustar\0' ? cstring(b, 345, 155) : '';
    if (prefix) name = `${prefix}/${name}`;
  }
  const typeflag = String.fromCharCode(b[156]);
  return {
    path: name,
    typeflag,
    type: typeOf(typeflag),
    mode: numeric(b, 100, 8, 'mode'),
    uid: numeric(b, 108, 8, 'uid'),
    gid: numeric(b, 116, 8, 'gid'),
    size: numeric(b, 124, 12, 'size'),
    mtime: numeric(b, 136, 12, 'mtime', true),
    linkname: cstring(b, 157, 100),
    uname: cstring(b, 265, 32),
    gname: cstring(b, 297, 32),
    devmajor: numeric(b, 329, 8, 'devmajor'),
    devminor: numeric(b, 337, 8, 'devminor'),
    pax: new Map(),
  };
}

/** Parses PAX extended header data: "LEN key=value\n" records, values kept as bytes. */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const sp = data.indexOf(0x20, pos);
    if (sp === -1) throw new BlockportError('ECORRUPT', 'tar PAX header: malformed record');
    const len = Number.parseInt(data.subarray(pos, sp).toString('latin1'), 10);
    if (!Number.isInteger(len) || len <= sp - pos || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new BlockportError('ECORRUPT', 'tar PAX header: malformed record length');
    }
    const rec = data.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq === -1) throw new BlockportError('ECORRUPT', 'tar PAX header: record without "="');
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

/** Applies PAX records over a parsed block, as POSIX says (they override the ustar fields). */
export function applyPax(h: TarHeader, pax: Map<string, Buffer>): void {
  if (pax.size === 0) {
    h.pax = pax;
    return;
  }
  // An empty value cancels the record (POSIX): the ustar field stands. Only mtime may be
  // fractional or negative (before 1970); sizes and ids are whole and never negative.
  const str = (k: string): string | undefined => {
    const v = pax.get(k);
    return v === undefined || v.length === 0 ? undefined : v.toString('utf8');
  };
  const num = (k: string, time = false): number | undefined => {
    const s = str(k);
    if (s === undefined) return undefined;
    const n = Number(s);
    const ok = time ? /^-?[0-9]+(\.[0-9]*)?$/.test(s) && Number.isFinite(n) : /^[0-9]+$/.test(s) && Number.isSafeInteger(n);
    if (!ok) throw new BlockportError('ECORRUPT', `tar PAX header: invalid ${k} ${JSON.stringify(s.slice(0, 40))}`);
    return n;
  };
  h.path = str('path') ?? h.path;
  h.linkname = str('linkpath') ?? h.linkname;
  h.uname = str('uname') ?? h.uname;
  h.gname = str('gname') ?? h.gname;
  h.size = num('size') ?? h.size;
  h.uid = num('uid') ?? h.uid;
  h.gid = num('gid') ?? h.gid;
  h.mtime = num('mtime', true) ?? h.mtime;
  if (!Number.isSafeInteger(h.size)) throw new BlockportError('ECORRUPT', 'tar PAX header: size too large');
  h.pax = pax;
  // a GNU PAX sparse file: the data is a sparse map plus fragments, not the file; never treat it as one
  if (h.type === 'file' && [...pax.keys()].some((k) => k.startsWith('GNU.sparse.'))) h.type = 'other';
}

/** The extended attributes of an entry (SCHILY.xattr.* records), values as bytes. */
export function xattrsOf(h: TarHeader): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of h.pax) if (k.startsWith('SCHILY.xattr.')) out.set(k.slice(13), v);
  return out;
}
