import { BLOCK, type TarType } from './header.js';
import { nameBytes } from './names.js';
import { paddingOf } from './reader.js';

const FLAGS: Record<Exclude<TarType, 'other'>, string> = {
  file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6', contiguous: '7',
};

/** What blockport writes for an entry it creates. Missing fields default to zero or empty. */
export interface NewEntry {
  path: string;
  type: TarType;
  /** The typeflag of an entry of type 'other' (GNU 'D', 'M', 'N', 'V', Solaris 'A'...), written as it is. */
  typeflag?: string;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds; a decimal string ("1600000000.123456789") keeps every digit of a PAX mtime. */
  mtime?: number | string;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records (e.g. SCHILY.xattr.*), written in sorted key order. */
  pax?: Map<string, Buffer>;
}

function writeString(b: Buffer, off: number, len: number, s: string): boolean {
  const bytes = nameBytes(s);
  if (bytes.length > len) return false;
  bytes.copy(b, off);
  return true;
}

function fitsOctal(n: number, len: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 8 ** (len - 1);
}

function writeOctal(b: Buffer, off: number, len: number, n: number): void {
  b.write(`${n.toString(8).padStart(len - 1, '0')}\0`, off, len, 'latin1');
}

function isAscii(s: string): boolean {
  return /^[\x01-\x7f]*$/.test(s);
}

/** One ustar block; fields that do not fit are left for the PAX header that precedes it. */
function ustarBlock(e: NewEntry, name: string, flag: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  writeString(b, 0, 100, name);
  const num = (off: number, len: number, v = 0) => writeOctal(b, off, len, fitsOctal(v, len) ? v : 0);
  num(100, 8, (e.mode ?? 0) & 0o7777);
  num(108, 8, e.uid);
  num(116, 8, e.gid);
  num(124, 12, size);
  num(136, 12, Math.floor(Number(e.mtime ?? 0)));
  b[156] = flag.charCodeAt(0);
  const link = e.linkname ?? '';
  if (isAscii(link) && link.length <= 100) writeString(b, 157, 100, link);
  b.write('ustar\x0000', 257, 8, 'latin1');
  if (isAscii(e.uname ?? '')) writeString(b, 265, 32, e.uname ?? '');
  if (isAscii(e.gname ?? '')) writeString(b, 297, 32, e.gname ?? '');
  num(329, 8, e.devmajor);
  num(337, 8, e.devminor);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return b;
}

/** A PAX time in plain decimal: String() would write tiny fractions as "1e-7", which readers refuse; a string is kept as given. */
function paxTime(t: number | string): string {
  if (typeof t === 'string') {
    if (!/^-?[0-9]+(\.[0-9]+)?$/.test(t)) throw new Error(`invalid mtime ${JSON.stringify(t)}`);
    return t;
  }
  const s = String(t);
  return /e/i.test(s) ? t.toFixed(9).replace(/\.?0+$/, '') : s;
}

/** The typeflag written for `e`: its type's, or the one given for an 'other' entry. */
function flagOf(e: NewEntry): string {
  if (e.type !== 'other') return FLAGS[e.type];
  if (!e.typeflag || e.typeflag.length !== 1 || 'xgLK'.includes(e.typeflag)) throw new Error(`no typeflag to write for ${JSON.stringify(e.path)}`);
  return e.typeflag;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

/**
 * The header bytes for `e`: a plain ustar block when every field fits, otherwise a PAX extended
 * header first. Deterministic: the same entry always gives the same bytes.
 */
export function encodeHeader(e: NewEntry): Buffer {
  const size = e.size ?? 0;
  const records = new Map<string, Buffer>(e.pax ?? []);
  const path = e.type === 'dir' && !e.path.endsWith('/') ? `${e.path}/` : e.path;
  let name = path;
  if (path.length > 100 || !isAscii(path)) {
    records.set('path', nameBytes(path));
    name = nameBytes(path).subarray(0, 100).toString('latin1').replace(/[^\x01-\x7f]/g, '_');
  }
  const link = e.linkname ?? '';
  if (link.length > 100 || !isAscii(link)) records.set('linkpath', nameBytes(link));
  if (!fitsOctal(size, 12)) records.set('size', Buffer.from(String(size)));
  if (!fitsOctal(e.uid ?? 0, 8)) records.set('uid', Buffer.from(String(e.uid)));
  if (!fitsOctal(e.gid ?? 0, 8)) records.set('gid', Buffer.from(String(e.gid)));
  const mtime = e.mtime ?? 0;
  const whole = typeof mtime === 'string' ? /^[0-9]+$/.test(mtime) && Number.isSafeInteger(Number(mtime)) : Number.isInteger(mtime);
  if (!whole || !fitsOctal(Number(mtime), 12)) records.set('mtime', Buffer.from(paxTime(mtime)));
  if (!isAscii(e.uname ?? '') || (e.uname ?? '').length > 32) records.set('uname', nameBytes(e.uname ?? ''));
  if (!isAscii(e.gname ?? '') || (e.gname ?? '').length > 32) records.set('gname', nameBytes(e.gname ?? ''));
  const main = ustarBlock(e, name, flagOf(e), size);
  if (records.size === 0) return main;
  const data = Buffer.concat([...records.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).map((k) => paxRecord(k, records.get(k)!)));
  const paxName = `PaxHeaders/${name.slice(0, 80)}`;
  const paxHead = ustarBlock({ path: paxName, type: 'file', mode: 0o644 }, paxName, 'x', data.length);
  return Buffer.concat([paxHead, data, Buffer.alloc(paddingOf(data.length)), main]);
}

/** Zero bytes that pad `size` bytes of data to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc(paddingOf(size));
}

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
