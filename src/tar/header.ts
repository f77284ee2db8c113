import { BlockportError } from '../errors.js';
import { nameOf } from './names.js';

export const BLOCK = 512;

export type TarType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo' | 'contiguous' | 'other';

/**
 * One entry's metadata after applying its own PAX and GNU extension headers, as Go's archive/tar
 * reads it (what docker and containerd unpack with). Names keep their bytes: valid UTF-8 is
 * decoded, any other byte 0x80-0xFF becomes the lone surrogate U+DC80-U+DCFF (see names.ts), so
 * two different names never read the same.
 */
export interface TarHeader {
  path: string;
  type: TarType;
  /** The raw typeflag character ('0', '5', ...). */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  /**
   * Bytes of data that follow the header in the archive: 0 for links, devices, fifos and
   * directories whatever their size field says (Go reads no data after those headers either).
   */
  size: number;
  /** Seconds since the epoch (fractional when PAX says so). */
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** PAX records of this entry's own extended header (never a global one), values as raw bytes. */
  pax: Map<string, Buffer>;
}

/** Typeflags whose entries carry no data, whatever their size field says (POSIX; Go's isHeaderOnlyType). */
export function isHeaderOnly(flag: string): boolean {
  return flag >= '1' && flag <= '6';
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
  for (let i = off; i < end; i++) if (b[i] > 0x7f) return nameOf(b.subarray(off, end));
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

const ZEROS = Buffer.alloc(1 << 18);

/** Whether every byte of `b` is zero (any length; memcmp against a zero buffer). */
export function isZeroBlock(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += ZEROS.length) {
    const n = Math.min(ZEROS.length, b.length - at);
    if (b.compare(ZEROS, 0, n, at, at + n) !== 0) return false;
  }
  return true;
}

/** `n` zero bytes, in shared read-only chunks (a long run of record padding is never allocated). */
export function* zeroChunks(n: number): Generator<Buffer> {
  for (let left = n; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
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

/** The header layouts Go's archive/tar tells apart (its getFormat): they place the name prefix differently. */
type Layout = 'v7' | 'ustar' | 'star' | 'gnu';

function layoutOf(b: Buffer): Layout {
  const magic = b.toString('latin1', 257, 263);
  if (magic === 'ustar\0') return b.toString('latin1', 508, 512) === 'tar\0' ? 'star' : 'ustar';
  if (magic === 'ustar ' && b[263] === 0x20 && b[264] === 0) return 'gnu';
  return 'v7';
}

/** Whether a GNU header's atime/ctime fields fail to parse: Go then reads them as a ustar prefix (files of Go before 1.8). */
function gnuTimesInvalid(b: Buffer): boolean {
  for (const off of [345, 357]) {
    if (b[off] === 0) continue;
    try {
      numeric(b, off, 12, 'time', true);
    } catch {
      return true;
    }
  }
  return false;
}

/** The name prefix of a header: ustar 155 bytes, star 131, none in v7 and GNU headers. */
function prefixOf(b: Buffer, layout: Layout): string {
  if (layout === 'ustar') return cstring(b, 345, 155);
  if (layout === 'star') return cstring(b, 345, 131);
  if (layout === 'gnu' && gnuTimesInvalid(b)) {
    const p = cstring(b, 345, 155);
    return /^[\x00-\x7f]*$/.test(p) ? p : '';
  }
  return '';
}

/** Parses one 512-byte header block (no extensions applied: `pax` is empty). Verifies the checksum. */
export function parseBlock(b: Buffer): TarHeader {
  const stored = numeric(b, 148, 8, 'checksum');
  if (!checksumMatches(b, stored)) throw new BlockportError('ECORRUPT', 'tar header: checksum mismatch (not a tar file, or corrupt)');
  const layout = layoutOf(b);
  let name = cstring(b, 0, 100);
  const prefix = layout === 'v7' ? '' : prefixOf(b, layout);
  if (prefix) name = `${prefix}/${name}`;
  const typeflag = String.fromCharCode(b[156]);
  // v7 headers have no owner names or device numbers: those bytes mean nothing there (Go ignores them)
  const v7 = layout === 'v7';
  return {
    path: name,
    typeflag,
    type: typeOf(typeflag),
    mode: numeric(b, 100, 8, 'mode'),
    uid: numeric(b, 108, 8, 'uid'),
    gid: numeric(b, 116, 8, 'gid'),
    size: numeric(b, 124, 12, 'size', isHeaderOnly(typeflag)),
    mtime: numeric(b, 136, 12, 'mtime', true),
    linkname: cstring(b, 157, 100),
    uname: v7 ? '' : cstring(b, 265, 32),
    gname: v7 ? '' : cstring(b, 297, 32),
    devmajor: v7 ? 0 : numeric(b, 329, 8, 'devmajor'),
    devminor: v7 ? 0 : numeric(b, 337, 8, 'devminor'),
    pax: new Map(),
  };
}

/** Whether a GNU (old style) sparse header says more sparse-map blocks follow it (byte 482; 504 in those blocks). */
export function sparseExtended(b: Buffer, first: boolean): boolean {
  return b[first ? 482 : 504] !== 0;
}

/** Whether `b` is the header of an old GNU sparse entry as Go accepts it (GNU layout only). */
export function isGnuLayout(b: Buffer): boolean {
  return layoutOf(b) === 'gnu';
}

function malformed(why: string): BlockportError {
  return new BlockportError('ECORRUPT', `tar PAX header: ${why}`);
}

/** Keys whose values are names: no NUL allowed in the value (Go's validPAXRecord); any other key may not hold a NUL. */
const NAME_KEYS = new Set(['path', 'linkpath', 'uname', 'gname']);

/**
 * Parses PAX extended header data: "LEN key=value\n" records, values kept as bytes, with the
 * checks of Go's parsePAX: every byte belongs to a record (no NUL padding inside the size), no
 * empty key, no NUL in a key or in a name value, GNU.sparse.offset/numbytes in pairs.
 */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  let sparse = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp === -1) throw malformed('malformed record');
    const digits = data.toString('latin1', pos, sp);
    const len = /^\+?[0-9]{1,16}$/.test(digits) ? Number(digits) : Number.NaN;
    if (!(len >= 5) || pos + len > data.length || len <= sp - pos + 1 || data[pos + len - 1] !== 0x0a) throw malformed('malformed record length');
    const rec = data.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq === -1) throw malformed('record without "="');
    if (eq === 0) throw malformed('record with an empty key');
    const keyBytes = rec.subarray(0, eq);
    const value = Buffer.from(rec.subarray(eq + 1));
    const key = nameOf(keyBytes);
    if (keyBytes.includes(0)) throw malformed(`NUL byte in key ${JSON.stringify(key)}`);
    if (NAME_KEYS.has(key) && value.includes(0)) throw malformed(`NUL byte in ${key}`);
    if (key === 'GNU.sparse.offset' || key === 'GNU.sparse.numbytes') {
      if ((key === 'GNU.sparse.offset') !== (sparse % 2 === 0) || value.includes(0x2c)) throw malformed('GNU sparse map records out of order');
      sparse++;
    }
    out.set(key, value);
    pos += len;
  }
  return out;
}

/** A PAX time ("SECONDS[.FRACTION]"), or ECORRUPT. */
function paxTime(k: string, s: string): number {
  if (!/^[-+]?[0-9]{1,16}(\.[0-9]*)?$/.test(s)) throw malformed(`invalid ${k} ${JSON.stringify(s.slice(0, 40))}`);
  return Number(s);
}

/**
 * Applies the records of an entry's own PAX header over its parsed block, as Go's mergePAX does
 * (they override the ustar fields; an empty value keeps the field). Global records are never
 * applied: Go does not, so docker and containerd see the entry as its own headers say.
 */
export function applyPax(h: TarHeader, pax: Map<string, Buffer>): void {
  h.pax = pax;
  if (pax.size === 0) return;
  const str = (k: string): string | undefined => {
    const v = pax.get(k);
    return v === undefined || v.length === 0 ? undefined : nameOf(v);
  };
  // sizes and ids are whole and never negative; only times may be fractional or before 1970
  const num = (k: string): number | undefined => {
    const s = str(k);
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(n)) throw malformed(`invalid ${k} ${JSON.stringify(s.slice(0, 40))}`);
    return n;
  };
  h.path = str('path') ?? h.path;
  h.linkname = str('linkpath') ?? h.linkname;
  h.uname = str('uname') ?? h.uname;
  h.gname = str('gname') ?? h.gname;
  h.size = num('size') ?? h.size;
  h.uid = num('uid') ?? h.uid;
  h.gid = num('gid') ?? h.gid;
  const mtime = str('mtime');
  if (mtime !== undefined) h.mtime = paxTime('mtime', mtime);
  for (const k of ['atime', 'ctime']) {
    const t = str(k);
    if (t !== undefined) paxTime(k, t);
  }
}

/** Whether PAX records make the entry a GNU sparse file, as Go's readGNUSparsePAXHeaders decides. */
function paxSparse(pax: Map<string, Buffer>): boolean {
  const major = pax.get('GNU.sparse.major')?.toString('latin1') ?? '';
  const minor = pax.get('GNU.sparse.minor')?.toString('latin1') ?? '';
  if (major === '0' && (minor === '0' || minor === '1')) return true;
  if (major === '1' && minor === '0') return true;
  if (major !== '' || minor !== '') return false;
  return (pax.get('GNU.sparse.map')?.length ?? 0) > 0 || pax.has('GNU.sparse.offset');
}

/**
 * Completes a header as Go's Reader.next does, in its order: the entry's own PAX records, then a
 * GNU long name or link (which win over PAX), a v7 regular file named `dir/` is a directory, a
 * header-only type carries no data whatever its size, and a GNU PAX sparse file takes its
 * `GNU.sparse.name`. Such a sparse file is never a regular file to blockport (its data is a map
 * and fragments), and a sparse map on a header-only type is refused, as Go refuses it.
 */
export function completeHeader(h: TarHeader, pax: Map<string, Buffer> | undefined, longName: string | undefined, longLink: string | undefined): void {
  if (pax) applyPax(h, pax);
  if (longName) h.path = longName;
  if (longLink) h.linkname = longLink;
  if (h.typeflag === '\0' && h.path.endsWith('/')) h.type = 'dir';
  const headerOnly = isHeaderOnly(h.typeflag) || h.type === 'dir';
  if (headerOnly) h.size = 0;
  else if (h.size < 0) throw new BlockportError('ECORRUPT', `tar header: negative size for ${h.path}`);
  if (pax && paxSparse(pax)) {
    if (headerOnly) throw malformed(`GNU sparse records on a ${h.type} (${h.path})`);
    const name = pax.get('GNU.sparse.name');
    if (name && name.length > 0) h.path = nameOf(name);
    h.type = 'other';
  }
  if (h.typeflag === 'S') h.type = 'other';
}

/** The extended attributes of an entry (SCHILY.xattr.* records), values as bytes. */
export function xattrsOf(h: TarHeader): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of h.pax) if (k.startsWith('SCHILY.xattr.')) out.set(k.slice(13), v);
  return out;
}
