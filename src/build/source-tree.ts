import { accessSync, constants, lstatSync, promises as fsp, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { basename, join, posix, resolve } from 'node:path';
import { BlockportError, fromSystemError } from '../errors.js';
import { cleanPath } from '../tar/path.js';

/** One file given to a layer: a host file or folder and where it goes in the image. */
export interface LayerFile {
  /** Host path (a folder's contents go below `dest`). */
  src: string;
  /** Absolute path in the image; a trailing "/" puts a file below it under its own name. */
  dest: string;
}

/** One entry of a layer to be written: image path (clean, relative), kind, and where its bytes are. */
export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  /** Host file holding the bytes (files only). */
  src?: string;
  size: number;
  /** Normalised: 0755 for folders and executable files, 0644 for other files, 0777 for symlinks. */
  mode: number;
  linkname?: string;
  /** Files: size, mtime and inode when listed, to notice a file rewritten while it is read. */
  stamp?: string;
}

/** Files a layer is made of, merged into one tree; folders the destinations need are made too. */
export class LayerTree {
  private readonly entries = new Map<string, TreeEntry>();

  /** Every entry in archive order: a folder, then its children sorted bytewise by name, depth first. */
  sorted(): TreeEntry[] {
    const children = new Map<string, string[]>();
    for (const p of this.entries.keys()) {
      const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
      let list = children.get(parent);
      if (!list) children.set(parent, (list = []));
      list.push(p);
    }
    const out: TreeEntry[] = [];
    const visit = (dir: string) => {
      const list = (children.get(dir) ?? []).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      for (const p of list) {
        const e = this.entries.get(p)!;
        out.push(e);
        if (e.type === 'dir') visit(p);
      }
    };
    visit('');
    return out;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Adds `e`; folders merge, anything else may appear once. */
  put(e: TreeEntry, from: string): void {
    const had = this.entries.get(e.path);
    if (had) {
      if (had.type === 'dir' && e.type === 'dir') return;
      throw new BlockportError('EUSAGE', `${from}: /${e.path} is given twice in one layer`, { subject: e.path });
    }
    for (let p = e.path; p.includes('/'); ) {
      p = p.slice(0, p.lastIndexOf('/'));
      const parent = this.entries.get(p);
      if (parent && parent.type !== 'dir') throw new BlockportError('EUSAGE', `${from}: /${e.path} would be below the file /${p}`, { subject: e.path });
      if (!parent) this.entries.set(p, { path: p, type: 'dir', size: 0, mode: 0o755 });
    }
    this.entries.set(e.path, e);
  }
}

/** The clean image path of a DEST, refusing one that leaves the root. */
export function destPath(dest: string, what: string): string {
  if (!dest.startsWith('/')) throw new BlockportError('EUSAGE', `${what}: DEST ${JSON.stringify(dest)} must be an absolute path in the image`);
  try {
    return cleanPath(dest, what);
  } catch {
    throw new BlockportError('EUNSAFE', `${what}: DEST ${JSON.stringify(dest)} escapes the image root`, { subject: dest });
  }
}

async function stat(p: string, what: string, follow: boolean): Promise<Stats> {
  try {
    return follow ? await fsp.stat(p) : await fsp.lstat(p);
  } catch (err) {
    throw fromSystemError(err, what);
  }
}

/** Whether a file can be read, checked before anything is written. */
async function checkReadable(p: string, what: string): Promise<void> {
  try {
    await fsp.access(p, constants.R_OK);
  } catch (err) {
    throw fromSystemError(err, what);
  }
}

export function stampOf(st: Stats): string {
  return `${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.ino}`;
}

/** Refuses a build whose files changed after they were listed: the layer and its diff_id came from different reads. */
export function checkUnchanged(entries: TreeEntry[]): void {
  for (const e of entries) {
    if (e.type !== 'file' || !e.src) continue;
    let now: string | undefined;
    try {
      now = stampOf(statSync(e.src));
    } catch {
      now = undefined;
    }
    if (now !== e.stamp) throw new BlockportError('EDIGEST', `${e.src}: changed while the image was built; build again once the build output is complete`, { subject: e.src });
  }
}

function fileMode(st: Stats): number {
  return st.mode & 0o111 ? 0o755 : 0o644;
}

/** Adds one --add (file or folder) to `tree`. Symlinks are kept, but only when they point inside SRC. */
export async function addSource(tree: LayerTree, f: LayerFile, what: string, base = process.cwd()): Promise<void> {
  const src = resolve(base, f.src);
  let dest = destPath(f.dest, what);
  const st = await stat(src, `${what}: SRC ${f.src}`, true);
  if (st.isDirectory()) {
    if (dest !== '') tree.put({ path: dest, type: 'dir', size: 0, mode: 0o755 }, what);
    addFolder(tree, src, dest, what);
    return;
  }
  if (!st.isFile()) throw new BlockportError('EUNSUPPORTED', `${what}: SRC ${f.src} is not a file or folder`, { subject: src });
  if (f.dest.endsWith('/') || dest === '') dest = dest === '' ? basename(src) : `${dest}/${basename(src)}`;
  await checkReadable(src, `${what}: ${f.src}`);
  tree.put({ path: dest, type: 'file', src, size: st.size, mode: fileMode(st), stamp: stampOf(st) }, what);
}

/**
 * Walks `root` (host) into `dest`, in sorted order. Synchronous on purpose: a node_modules tree is
 * thousands of tiny folders, and a thread-pool round trip per call made the walk 45 us an entry
 * (150 ms for 3,300); the first problem found is also always the same one.
 */
function addFolder(tree: LayerTree, root: string, dest: string, what: string): void {
  const pending = [''];
  while (pending.length) {
    const rel = pending.pop()!;
    const dir = rel ? join(root, rel) : root;
    const names = sys(() => readdirSync(dir), `${what}: ${dir}`).sort();
    const subdirs: string[] = [];
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const host = join(root, r);
      const path = dest ? `${dest}/${r}` : r;
      const st = sys(() => lstatSync(host), `${what}: ${host}`);
      if (st.isDirectory()) {
        tree.put({ path, type: 'dir', size: 0, mode: 0o755 }, what);
        subdirs.push(r);
      } else if (st.isFile()) {
        // opening for reading is what fails later; checked now, so a bad file fails before any write
        sys(() => accessSync(host, constants.R_OK), `${what}: ${host}`);
        tree.put({ path, type: 'file', src: host, size: st.size, mode: fileMode(st), stamp: stampOf(st) }, what);
      } else if (st.isSymbolicLink()) {
        const target = sys(() => readlinkSync(host), `${what}: ${host}`);
        checkLinkInside(r, target, host, what);
        tree.put({ path, type: 'symlink', size: 0, mode: 0o777, linkname: target }, what);
      } else {
        throw new BlockportError('EUNSUPPORTED', `${what}: ${host} is a special file (socket, fifo or device); only files, folders and symlinks can be added`, { subject: host });
      }
    }
    // reversed onto the stack, so folders are walked in sorted order
    pending.push(...subdirs.reverse());
  }
}

function sys<T>(f: () => T, what: string): T {
  try {
    return f();
  } catch (err) {
    throw fromSystemError(err, what);
  }
}

/**
 * A symlink must resolve, lexically, inside the SRC folder: one pointing elsewhere on the build
 * machine would mean something else in the image (and leaks the build machine's layout).
 */
function checkLinkInside(rel: string, target: string, host: string, what: string): void {
  const escapes = (): boolean => {
    if (target.startsWith('/') || target.includes('\0')) return true;
    const resolved = posix.normalize(posix.join(posix.dirname(rel), target));
    return resolved === '..' || resolved.startsWith('../');
  };
  if (escapes()) {
    throw new BlockportError('EUNSAFE', `${what}: symlink ${host} -> ${target} points outside the source folder`, { subject: host });
  }
}
