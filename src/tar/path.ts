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
