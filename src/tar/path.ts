import { posix } from 'node:path';
import { BlockportError } from '../errors.js';

/**
 * The one path sanitiser: turns a tar entry name into a clean relative path ("usr/bin/x"), or ""
 * for the root. Refuses `..` components, NUL bytes and anything that would leave the root. Leading
 * "/" and "./" are dropped, as every runtime does.
 */
export function cleanPath(name: string, what = 'tar entry'): string {
  if (name.includes('\0')) throw new BlockportError('EUNSAFE', `${what}: NUL byte in path ${JSON.stringify(name)}`, { subject: name });
  const parts: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new BlockportError('EUNSAFE', `${what}: path ${JSON.stringify(name)} escapes the root`, { subject: name });
    parts.push(part);
  }
  return parts.join('/');
}

/** Resolves a symlink target from the folder holding the link; null when it would leave the root. */
export function resolveLink(linkDir: string, target: string): string | null {
  const joined = target.startsWith('/') ? target : posix.join('/', linkDir, target);
  const norm = posix.normalize(`/${joined}`);
  // absolute targets are rooted at the image root, as in a container; only `..` past root escapes
  let depth = 0;
  for (const part of (target.startsWith('/') ? target : `${linkDir}/${target}`).split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (depth === 0) return null;
      depth--;
    } else depth++;
  }
  return norm.slice(1);
}

/** Whether `path` is `dir` itself or below it. */
export function isWithin(path: string, dir: string): boolean {
  return dir === '' || path === dir || path.startsWith(`${dir}/`);
}
