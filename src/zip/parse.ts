import type { FileRange } from './file-range.js';

/**
 * Why a file is not taken as a zip whose entries can be worked on one by one. Not a user error:
 * the caller falls back to treating the file as plain bytes (a byte delta), so a hostile or
 * unusual zip costs bytes, never a wrong block.
 */
export class ZipRefused extends Error {
  override readonly name = 'ZipRefused';
}

/** One entry, checked against both its central-directory record and its local header. */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate; any other method is carried as opaque bytes. */
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  /** Offsets in the zip: local header, data, end of data, end of the data descriptor (or of the data). */
  headerStart: number;
  dataStart: number;
  dataEnd: number;
  end: number;
}

/** A zip's entries in file order and where its central directory starts (after the last entry). */
export interface ZipLayout {
  entries: ZipEntry[];
  cdStart: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const DESCRIPTOR = 0x08074b50;
const MAX32 = 0xffffffff;
/** Central directories above this (about 800,000 entries) are refused rather than read into memory. */
export const MAX_CENTRAL_DIRECTORY = 64 << 20;

function refuse(why: string): never {
  throw new ZipRefused(why);
}

function u64(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) refuse('a zip64 field is out of range');
  return Number(v);
}

interface End {
  entries: number;
  cdSize: number;
  cdOffset: number;
  /** Where the central directory must end: the zip64 end record or the end record. */
  cdEnd: number;
}

/** The end of central directory record whose comment runs exactly to the end of the file. */
function findEnd(z: FileRange): End {
  if (z.size < 22) refuse('too small for a zip');
  const tailLen = Math.min(z.size, 22 + 0xffff);
  const tail = z.read(z.size - tailLen, tailLen);
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== EOCD || i + 22 + tail.readUInt16LE(i + 20) !== tail.length) continue;
    const pos = z.size - tailLen + i;
    if (tail.readUInt16LE(i + 4) !== 0 || tail.readUInt16LE(i + 6) !== 0) refuse('a multi-disk zip');
    const end = { entries: tail.readUInt16LE(i + 10), cdSize: tail.readUInt32LE(i + 12), cdOffset: tail.readUInt32LE(i + 16), cdEnd: pos };
    return pos >= 20 ? withZip64(z, pos, end) : end;
  }
  refuse('no end of central directory record');
}

/** Applies the zip64 end record when a locator precedes the end record; its values must agree with the 32-bit ones that are not maxed out. */
function withZip64(z: FileRange, eocd: number, end: End): End {
  const loc = z.read(eocd - 20, 20);
  if (loc.readUInt32LE(0) !== ZIP64_LOCATOR) {
    if (end.entries === 0xffff || end.cdSize === MAX32 || end.cdOffset === MAX32) refuse('zip64 values without a zip64 locator');
    return end;
  }
  const at = u64(loc, 8);
  if (at + 56 > eocd - 20) refuse('zip64 end record out of place');
  const r = z.read(at, 56);
  if (r.readUInt32LE(0) !== ZIP64_EOCD) refuse('bad zip64 end record');
  const z64 = { entries: u64(r, 32), cdSize: u64(r, 40), cdOffset: u64(r, 48), cdEnd: at };
  if (r.readUInt32LE(16) !== 0 || r.readUInt32LE(20) !== 0) refuse('a multi-disk zip');
  if ((end.entries !== 0xffff && end.entries !== z64.entries) || (end.cdSize !== MAX32 && end.cdSize !== z64.cdSize) || (end.cdOffset !== MAX32 && end.cdOffset !== z64.cdOffset)) {
    refuse('the zip64 end record disagrees with the end record');
  }
  return z64;
}

/** Reads the zip64 extra field (id 1): the values of the fields that are maxed out, in their order. */
function zip64Extra(extra: Buffer, want: { size: boolean; csize: boolean; offset: boolean }): { size?: number; csize?: number; offset?: number } {
  for (let i = 0; i + 4 <= extra.length;) {
    const id = extra.readUInt16LE(i);
    const len = extra.readUInt16LE(i + 2);
    if (i + 4 + len > extra.length) refuse('an extra field runs past its record');
    if (id === 1) {
      const out: { size?: number; csize?: number; offset?: number } = {};
      let p = i + 4;
      for (const k of ['size', 'csize', 'offset'] as const) {
        if (!want[k]) continue;
        if (p + 8 > i + 4 + len) refuse('a zip64 extra field is too short');
        out[k] = u64(extra, p);
        p += 8;
      }
      return out;
    }
    i += 4 + len;
  }
  if (want.size || want.csize || want.offset) refuse('maxed-out sizes without a zip64 extra field');
  return {};
}

interface Central {
  name: Buffer;
  flags: number;
  method: number;
  crc: number;
  csize: number;
  size: number;
  offset: number;
}

function readCentral(z: FileRange, end: End): Central[] {
  if (end.cdSize > MAX_CENTRAL_DIRECTORY) refuse(`a central directory of ${end.cdSize} bytes`);
  const shift = end.cdEnd - end.cdSize - end.cdOffset; // bytes prepended to the zip (a launch script)
  if (shift < 0) refuse('the central directory does not end where the end record starts');
  const cd = z.read(end.cdOffset + shift, end.cdSize);
  if (cd.length !== end.cdSize) refuse('truncated central directory');
  const out: Central[] = [];
  let p = 0;
  while (p < cd.length) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) refuse('bad central directory record');
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const next = p + 46 + nameLen + extraLen + cd.readUInt16LE(p + 32);
    if (next > cd.length) refuse('a central directory record runs past the directory');
    if (cd.readUInt16LE(p + 34) !== 0) refuse('a multi-disk zip');
    const raw = { csize: cd.readUInt32LE(p + 20), size: cd.readUInt32LE(p + 24), offset: cd.readUInt32LE(p + 42) };
    const x = zip64Extra(cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), { size: raw.size === MAX32, csize: raw.csize === MAX32, offset: raw.offset === MAX32 });
    out.push({
      name: cd.subarray(p + 46, p + 46 + nameLen),
      flags: cd.readUInt16LE(p + 8),
      method: cd.readUInt16LE(p + 10),
      crc: cd.readUInt32LE(p + 16),
      csize: x.csize ?? raw.csize,
      size: x.size ?? raw.size,
      offset: (x.offset ?? raw.offset) + shift,
    });
    p = next;
  }
  if (out.length !== end.entries) refuse(`the end record counts ${end.entries} entries, the central directory holds ${out.length}`);
  return out;
}

/** The length of the data descriptor at `at` that repeats the entry's values: with or without signature, 32- or 64-bit sizes. */
function descriptorLength(z: FileRange, at: number, c: Central): number {
  const b = z.read(at, 24);
  for (const sig of [true, false]) {
    const o = sig ? 4 : 0;
    if (sig && (b.length < 4 || b.readUInt32LE(0) !== DESCRIPTOR)) continue;
    if (b.length >= o + 12 && b.readUInt32LE(o) === c.crc && b.readUInt32LE(o + 4) === c.csize && b.readUInt32LE(o + 8) === c.size) return o + 12;
    if (b.length >= o + 20 && b.readUInt32LE(o) === c.crc && Number(b.readBigUInt64LE(o + 4)) === c.csize && Number(b.readBigUInt64LE(o + 12)) === c.size) return o + 20;
  }
  refuse('a data descriptor disagrees with the central directory');
}

/** Checks an entry's local header against its central record and finds where its data and descriptor end. */
function readLocal(z: FileRange, c: Central, limit: number): ZipEntry {
  const h = z.read(c.offset, 30);
  if (h.length < 30 || h.readUInt32LE(0) !== LOCAL) refuse('a central record points at no local header');
  const nameLen = h.readUInt16LE(26);
  const extraLen = h.readUInt16LE(28);
  const name = z.read(c.offset + 30, nameLen);
  if (!name.equals(c.name)) refuse('a local header names another file than the central directory');
  if (h.readUInt16LE(6) !== c.flags || h.readUInt16LE(8) !== c.method) refuse('a local header disagrees with the central directory');
  const deferred = (c.flags & 8) !== 0;
  const raw = { crc: h.readUInt32LE(14), csize: h.readUInt32LE(18), size: h.readUInt32LE(22) };
  const extra = z.read(c.offset + 30 + nameLen, extraLen);
  const x = zip64Extra(extra, { size: raw.size === MAX32, csize: raw.csize === MAX32, offset: false });
  const local = { crc: raw.crc, csize: x.csize ?? raw.csize, size: x.size ?? raw.size };
  const zero = deferred && local.crc === 0 && local.csize === 0 && local.size === 0;
  if (!zero && (local.crc !== c.crc || local.csize !== c.csize || local.size !== c.size)) refuse('a local header disagrees with the central directory on sizes or CRC');
  if (c.method === 0 && c.csize !== c.size && (c.flags & 1) === 0) refuse('a stored entry whose sizes differ');
  const dataStart = c.offset + 30 + nameLen + extraLen;
  const dataEnd = dataStart + c.csize;
  if (dataEnd > limit) refuse('an entry runs into the central directory');
  const end = deferred ? dataEnd + descriptorLength(z, dataEnd, c) : dataEnd;
  if (end > limit) refuse('a data descriptor runs into the central directory');
  return { name: c.name.toString('utf8'), method: c.method, flags: c.flags, crc: c.crc, compressedSize: c.csize, size: c.size, headerStart: c.offset, dataStart, dataEnd, end };
}

/**
 * Parses a zip strictly: the end record (zip64 too), every central record, and each entry's local
 * header and data descriptor, which must agree with it. Refuses (ZipRefused) multi-disk zips,
 * overlapping entries, entries reaching into the central directory and any disagreement, so that
 * what follows may treat each entry's data range as exactly that entry's bytes.
 */
export function parseZip(z: FileRange): ZipLayout {
  const end = findEnd(z);
  const central = readCentral(z, end);
  const cdStart = end.cdEnd - end.cdSize;
  const entries = central.map((c) => readLocal(z, c, cdStart)).sort((a, b) => a.headerStart - b.headerStart);
  for (let i = 1; i < entries.length; i++) if (entries[i].headerStart < entries[i - 1].end) refuse('overlapping entries');
  return { entries, cdStart };
}

/** Whether the range starts like a zip (a local header or an empty zip's end record): worth parsing. */
export function looksLikeZip(z: FileRange): boolean {
  const head = z.read(0, 4);
  return head.length === 4 && (head.readUInt32LE(0) === LOCAL || head.readUInt32LE(0) === EOCD);
}
