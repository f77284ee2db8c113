import { promises as fsp, createReadStream, type promises } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { BlockportError, fromSystemError } from '../errors.js';
import { FileBytes } from '../tar/bytes.js';
import type { TarType } from '../tar/header.js';
import { cleanPath, resolveLink } from '../tar/path.js';
import { TarReader } from '../tar/reader.js';
import { sniffCompression } from './compression.js';
import { MAX_JSON_BLOB } from './json.js';
import { CHUNK } from '../chunk.js';

/** Most links followed to reach a regular member. */
const MAX_LINK_HOPS = 8;

/** One member of a tar file: where its data starts and how long it is. */
export interface TarMember {
  /** The cleaned name (no leading "./" or "/", no trailing "/"). */
  name: string;
  type: TarType;
  /** A link's target as stored (not cleaned); empty for other types. */
  linkname: string;
  /** Offset of the first data byte in the file. */
  offset: number;
  size: number;
}

/** The members of one tar file by cleaned name; a name stored twice keeps its last entry, as tar does. */
export interface TarIndex {
  file: string;
  members: Map<string, TarMember>;
}

type FileHandle = promises.FileHandle;

/** Exactly `n` bytes at `pos`, or ECORRUPT: the archive ends early. */
async function readAt(fh: FileHandle, pos: number, n: number, file: string): Promise<Buffer> {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
    if (bytesRead === 0) throw new BlockportError('ECORRUPT', `${file}: truncated tar (ends inside an entry at byte ${pos + got})`, { subject: file });
    got += bytesRead;
  }
  return buf;
}

/**
 * Indexes an uncompressed tar file by reading only its headers and seeking past the data, so a
 * multi-gigabyte archive is indexed in milliseconds. A member running past the end of the file is
 * ECORRUPT; a member name that climbs out of the root is EUNSAFE.
 */
export async function indexTarFile(file: string): Promise<TarIndex> {
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    throw fromSystemError(err, file);
  }
  try {
    const total = (await fh.stat()).size;
    const compression = sniffCompression(await readAt(fh, 0, Math.min(4, total), file));
    if (compression !== 'none') {
      throw new BlockportError('EUNSUPPORTED', `${file}: archive is ${compression}-compressed; decompress it first`, { subject: file });
    }
    const members = new Map<string, TarMember>();
    // the tar reader walks the headers; on a FileBytes, member data is skipped, never read
    const reader = new TarReader(new FileBytes(fh.fd, total, file), file);
    for await (const e of reader.entries()) {
      if (e.global) continue; // a PAX global header names no member
      const h = e.header;
      const name = cleanPath(h.path, `${file}: tar entry`);
      if (name !== '') members.set(name, { name, type: h.type, linkname: h.linkname, offset: e.offset + e.raw.length, size: h.size });
    }
    return { file, members };
  } catch (err) {
    throw fromSystemError(err, file);
  } finally {
    await fh.close();
  }
}

/**
 * The regular file `name` stands for. Links inside the archive are followed (`docker save` writes
 * a symlink for a layer shared by two images); a link leaving the archive root is EUNSAFE, and a
 * dangling one, a loop or a non-file is refused with a message naming the member.
 */
export function requireFile(index: TarIndex, name: string, what = index.file): TarMember {
  let current = cleanPath(name, what);
  for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
    const m = index.members.get(current);
    if (!m) {
      const via = current === name ? '' : ` (reached from ${name} through links)`;
      throw new BlockportError('ENOTFOUND', `${what}: archive has no member ${current}${via}`, { subject: current });
    }
    if (m.type === 'file' || m.type === 'contiguous') return m;
    if (m.type === 'hardlink') {
      current = cleanPath(m.linkname, what);
    } else if (m.type === 'symlink') {
      const dir = posix.dirname(m.name);
      const target = resolveLink(dir === '.' ? '' : dir, m.linkname);
      if (target === null) throw new BlockportError('EUNSAFE', `${what}: member ${m.name} links outside the archive (${m.linkname})`, { subject: m.name });
      current = target;
    } else {
      throw new BlockportError('EUNSUPPORTED', `${what}: member ${m.name} is a ${m.type}, not a regular file`, { subject: m.name });
    }
  }
  throw new BlockportError('EUNSAFE', `${what}: member ${name} is a chain of more than ${MAX_LINK_HOPS} links`, { subject: name });
}

/** A stream of a member's data bytes (unverified: wrap it when the content has a digest). */
export function openMember(file: string, m: TarMember): Readable {
  if (m.size === 0) return Readable.from([]);
  return createReadStream(file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: CHUNK });
}

/** A small member (a JSON file) read whole; more than `limit` bytes is ECORRUPT. */
export async function readMember(file: string, m: TarMember, limit = MAX_JSON_BLOB): Promise<Buffer> {
  if (m.size > limit) throw new BlockportError('ECORRUPT', `${file}: member ${m.name} is larger than ${limit} bytes`, { subject: m.name });
  let fh: FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    throw fromSystemError(err, file);
  }
  try {
    return await readAt(fh, m.offset, m.size, file);
  } finally {
    await fh.close();
  }
}

/** The first `n` bytes of a member (fewer when it is shorter): for sniffing compression. */
export async function readMemberHead(file: string, m: TarMember, n: number): Promise<Buffer> {
  return readMember(file, { ...m, size: Math.min(n, m.size) });
}
