import { parseDigest, type Digest } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { cleanPath } from '../tar/path.js';

export const IMPORT_PREFIX = '.import.';
const MAGIC = 'blockport-import 1';
/** Import entries are small; a larger one is refused before parsing (a DoS guard). */
export const MAX_IMPORT_ENTRY = 1 << 20;

/** One entry of a folder import, in original archive order. */
export interface ImportMember {
  /** Path relative to the folder, "." for the folder's own entry. */
  rel: string;
  /** The original header bytes, or undefined to use the block's canonical header. */
  raw?: Buffer;
}

/** The parsed content of a `.import.NAME` entry (docs/spec.md, "The import entry"). */
export interface ImportEntry {
  /** Clean relative path of the imported file or folder ("usr/share/java/x.jar"). */
  path: string;
  kind: 'file' | 'dir';
  block: Digest;
  /** File imports: the block's size. */
  size?: number;
  /** File imports: the original header bytes. */
  raw?: Buffer;
  /** Folder imports: members in original order. */
  members?: ImportMember[];
  /** Metadata for synthesized headers (imports built from artifacts). */
  meta: { mode?: number; uid?: number; gid?: number; mtime?: number; uname?: string; gname?: string; xattrs: Map<string, Buffer> };
}

/** Percent-encodes bytes that would break the line grammar: controls, space, DEL and '%'. */
export function encodePath(p: string): string {
  const out: number[] = [];
  for (const b of Buffer.from(p, 'utf8')) {
    if (b <= 0x20 || b === 0x7f || b === 0x25) out.push(...Buffer.from(`%${b.toString(16).toUpperCase().padStart(2, '0')}`));
    else out.push(b);
  }
  return Buffer.from(out).toString('utf8');
}

export function decodePath(s: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x25) {
      const hex = raw.subarray(i + 1, i + 3).toString('latin1');
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new BlockportError('ECORRUPT', `import entry: bad percent-escape in ${JSON.stringify(s)}`);
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else bytes.push(raw[i]);
  }
  const out = Buffer.from(bytes).toString('utf8');
  // one spelling per path: "%41" for "A" or lowercase hex would let two texts mean the same thing
  if (encodePath(out) !== s) throw new BlockportError('ECORRUPT', `import entry: non-canonical encoding ${JSON.stringify(s)}`);
  return out;
}

/** The name of the import entry that stands for `path`: same folder, basename prefixed. */
export function importEntryName(path: string): string {
  const i = path.lastIndexOf('/');
  return i === -1 ? `${IMPORT_PREFIX}${path}` : `${path.slice(0, i + 1)}${IMPORT_PREFIX}${path.slice(i + 1)}`;
}

/** The path an import entry named `name` stands for, or undefined if `name` is not one. */
export function importedPath(name: string): string | undefined {
  const clean = cleanPath(name);
  const i = clean.lastIndexOf('/');
  const base = clean.slice(i + 1);
  if (!base.startsWith(IMPORT_PREFIX) || base.length === IMPORT_PREFIX.length) return undefined;
  return `${clean.slice(0, i + 1)}${base.slice(IMPORT_PREFIX.length)}`;
}

/** Serializes an import entry to its text form. */
export function formatImportEntry(e: ImportEntry): Buffer {
  const lines = [MAGIC, `/${encodePath(e.path)}${e.kind === 'dir' ? '/' : ''} from ${e.block}`];
  if (e.size !== undefined) lines.push(`size ${e.size}`);
  const m = e.meta;
  if (m.mode !== undefined) lines.push(`mode ${m.mode.toString(8).padStart(4, '0')}`);
  if (m.uid !== undefined) lines.push(`uid ${m.uid}`);
  if (m.gid !== undefined) lines.push(`gid ${m.gid}`);
  if (m.mtime !== undefined) lines.push(`mtime ${m.mtime}`);
  if (m.uname !== undefined) lines.push(`uname ${encodePath(m.uname)}`);
  if (m.gname !== undefined) lines.push(`gname ${encodePath(m.gname)}`);
  for (const [k, v] of [...m.xattrs].sort(([a], [b]) => (a < b ? -1 : 1))) lines.push(`xattr ${encodePath(k)} ${v.toString('base64')}`);
  if (e.raw) lines.push(`raw ${e.raw.toString('base64')}`);
  for (const mem of e.members ?? []) lines.push(`member ${encodePath(mem.rel)} ${mem.raw ? mem.raw.toString('base64') : '-'}`);
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8');
}

function bad(where: string, why: string): BlockportError {
  return new BlockportError('ECORRUPT', `import entry ${where}: ${why}`, { subject: where });
}

function int(v: string, where: string, key: string, radix = 10): number {
  // decimal numbers are at most 2^53 - 1, without leading zeros (docs/spec.md 6.2)
  const ok = radix === 8 ? /^[0-7]{1,7}$/.test(v) : /^(0|[1-9]\d{0,15})$/.test(v) && Number.isSafeInteger(Number(v));
  if (!ok) throw bad(where, `invalid ${key} ${JSON.stringify(v.slice(0, 40))}`);
  return Number.parseInt(v, radix);
}

function b64(v: string, where: string): Buffer {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw bad(where, 'invalid base64');
  return Buffer.from(v, 'base64');
}

/**
 * Parses an import entry's text. `where` is the entry's own (clean) name, whose location the
 * declared path must match: an entry cannot import into another folder.
 */
export function parseImportEntry(text: Buffer, where: string): ImportEntry {
  if (text.length > MAX_IMPORT_ENTRY) throw bad(where, `larger than ${MAX_IMPORT_ENTRY} bytes`);
  const lines = text.toString('utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  if (lines[0] !== MAGIC) {
    throw new BlockportError('EUNSUPPORTED', `import entry ${where}: not a blockport v1 import entry (first line ${JSON.stringify(lines[0]?.slice(0, 40))})`, { subject: where });
  }
  const head = /^(\/\S*) from (\S+)$/.exec(lines[1] ?? '');
  if (!head) throw bad(where, 'second line must be "PATH from DIGEST"');
  const kind = head[1].endsWith('/') && head[1] !== '/' ? 'dir' : 'file';
  const path = cleanPath(decodePath(head[1]), `import entry ${where}`);
  const expected = importedPath(where);
  if (path === '' || path !== expected) throw new BlockportError('EUNSAFE', `import entry ${where}: declares ${JSON.stringify(`/${path}`)}, not its own location /${expected ?? '?'}`, { subject: where });
  const e: ImportEntry = { path, kind, block: parseDigest(head[2], `import entry ${where}`), meta: { xattrs: new Map() } };
  const seen = new Set<string>();
  for (const line of lines.slice(2)) {
    const sp = line.indexOf(' ');
    const key = sp === -1 ? line : line.slice(0, sp);
    const v = sp === -1 ? '' : line.slice(sp + 1);
    // one of each key, one line per xattr name and member rel
    const id = key === 'xattr' || key === 'member' ? `${key} ${v.split(' ')[0]}` : key;
    if (seen.has(id)) throw bad(where, `${id.slice(0, 60)} repeated`);
    seen.add(id);
    switch (key) {
      case 'size': e.size = int(v, where, key); break;
      case 'raw': e.raw = b64(v, where); break;
      case 'mode': e.meta.mode = /^[0-7]{4}$/.test(v) ? int(v, where, key, 8) : int('x', where, key); break;
      case 'uid': e.meta.uid = int(v, where, key); break;
      case 'gid': e.meta.gid = int(v, where, key); break;
      case 'mtime': e.meta.mtime = int(v, where, key); break;
      case 'uname': e.meta.uname = decodePath(v); break;
      case 'gname': e.meta.gname = decodePath(v); break;
      case 'xattr': {
        const [name, val] = v.split(' ');
        if (!name || val === undefined) throw bad(where, 'xattr needs NAME B64');
        e.meta.xattrs.set(decodePath(name), b64(val, where));
        break;
      }
      case 'member': {
        if (kind !== 'dir') throw bad(where, 'member line in a file import');
        const [rel, raw] = v.split(' ');
        if (!rel || raw === undefined) throw bad(where, 'member needs REL B64|-');
        const r = decodePath(rel);
        const clean = r === '.' ? '.' : cleanPath(r, `import entry ${where}`);
        if (clean === '') throw bad(where, `member ${JSON.stringify(r)}`);
        (e.members ??= []).push({ rel: clean, raw: raw === '-' ? undefined : b64(raw, where) });
        break;
      }
      default:
        throw bad(where, `unknown key ${JSON.stringify(key)}`);
    }
  }
  if (kind === 'file' && e.size === undefined) throw bad(where, 'file import without size');
  if (kind === 'dir' && (e.size !== undefined || e.raw)) throw bad(where, 'size and raw belong to file imports');
  const m = e.meta;
  if (e.raw && (m.mode ?? m.uid ?? m.gid ?? m.mtime ?? m.uname ?? m.gname) !== undefined) throw bad(where, 'metadata lines conflict with raw');
  return e;
}
