import { BlockportError } from '../errors.js';

/** A name with something cleanPath drops or refuses: a leading, doubled or trailing "/", a "." or ".." part, a NUL. */
const UNUSUAL_PATH = /^\/|\/\/|\/$|(?:^|\/)\.\.?(?:\/|$)|\0/;

/**
 * The one path sanitiser: turns a tar entry name into a clean relative path ("usr/bin/x"), or ""
 * for the root. Refuses `..` components, NUL bytes and anything that would leave the root. Leading
 * "/" and "./" are dropped, as every runtime does.
 */
export function cleanPath(name: string, what = 'tar entry'): string {
  // most names are clean already: nothing to drop or refuse (splitting every name cost 128 ms of the node bench image's 2.2 s of splicing)
  if (!UNUSUAL_PATH.test(name)) return name;
  if (name.includes('\0')) throw new BlockportError('EUNSAFE', `${what}: NUL byte in path ${JSON.stringify(name)}`, { subject: name });
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new BlockportError('EUNSAFE', `${what}: path ${JSON.stringify(name)} escapes the root`, { subject: name });
    parts.push(part);
  }
  return parts.join('/');
}

/**
 * Resolves a symlink target from the folder holding the link, lexically, to a clean relative path
 * ("" for the root); null when it would leave the root. Absolute targets start at the image root, as
 * in a container. A `..` past the root at any step is refused, even one a runtime would clamp.
 */
export function resolveLink(linkDir: string, target: string): string | null {
  const out: string[] = [];
  for (const part of (target.startsWith('/') ? target : `${linkDir}/${target}`).split('/')) {
    if (part === '' || part === '.') continue;
    if (part !== '..') out.push(part);
    else if (out.pop() === undefined) return null;
  }
  return out.join('/');
}

/** Whether `path` is `dir` itself or below it. */
export function isWithin(path: string, dir: string): boolean {
  return dir === '' || path === dir || path.startsWith(`${dir}/`);
}

/**
 * A hard link's target as a clean relative path: it names an entry of the image, from its root,
 * so it is judged like a name, and stricter: an absolute target (`/etc/shadow`) is refused too,
 * since no image builder writes one and an unpacker that honours it links a host file.
 */
export function cleanLinkTarget(target: string, what = 'tar entry'): string {
  if (target.startsWith('/')) throw new BlockportError('EUNSAFE', `${what}: hard link to the absolute path ${JSON.stringify(target)}`, { subject: target });
  const clean = cleanPath(target, `${what}: hard link target`);
  if (clean === '') throw new BlockportError('EUNSAFE', `${what}: hard link to the root`, { subject: target });
  return clean;
}

/** The parts of an entry the guard judges. */
export interface GuardedEntry {
  path: string;
  type: string;
  linkname: string;
}

/**
 * Judges the entries of one layer, in order: the one place where names and link targets are
 * checked, for blockify (the layers it reads) and materialize (the layers it writes). Refuses
 * (EUNSAFE) a `..` or NUL in a name, a hard link leaving the root, and any entry written (or hard
 * link read) through a symlink that an earlier entry of the same layer made: an unpacker that
 * follows it (`a -> /etc`, then `a/passwd`) writes outside the root. Symlink targets themselves
 * may point anywhere: runtimes resolve them inside the container.
 */
export class LayerGuard {
  private readonly symlinks = new Set<string>();

  constructor(private readonly what: string) {}

  /** The clean path of the entry, after checking it. */
  check(e: GuardedEntry): string {
    const path = cleanPath(e.path, this.what);
    this.notThrough(path, `/${path}`);
    if (e.type === 'hardlink') {
      const target = cleanLinkTarget(e.linkname, `${this.what}: /${path}`);
      this.notThrough(target, `hard link /${path} -> /${target}`);
    }
    // a later entry at the same path replaces the link (runtimes unlink it first)
    if (e.type === 'symlink') this.symlinks.add(path);
    else if (this.symlinks.size > 0) this.symlinks.delete(path);
    return path;
  }

  /** Refuses `path` when one of its parent folders is a symlink of this layer; `what` names it in the message. */
  private notThrough(path: string, what: string): void {
    if (this.symlinks.size === 0) return;
    for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
      const dir = path.slice(0, i);
      if (this.symlinks.has(dir)) {
        throw new BlockportError('EUNSAFE', `${this.what}: ${what} goes through the symlink /${dir} of the same layer`, { subject: path });
      }
    }
  }
}
