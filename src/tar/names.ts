/**
 * Tar names are bytes; JavaScript strings are UTF-16. A name that is valid UTF-8 (nearly all) is
 * decoded as such; in any other name each byte that is not part of a valid UTF-8 sequence becomes
 * the lone surrogate U+DC80-U+DCFF (Python's "surrogateescape"). The mapping is one to one: no
 * valid UTF-8 decodes to a lone surrogate, so two different byte names never give the same
 * string, and `nameBytes` gives the exact bytes back. Decoding to U+FFFD instead made two names
 * collide and rewrote the bytes of names blockport re-encoded.
 */

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** An escaped byte: a low surrogate not preceded by a high one, in the range U+DC80-U+DCFF. */
const ESCAPED = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;

/** The name the bytes `b` spell (see above). */
export function nameOf(b: Uint8Array): string {
  try {
    return strict.decode(b);
  } catch {
    return escapedName(b);
  }
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0 (RFC 3629: no overlongs, surrogates or values above U+10FFFF). */
function sequenceAt(b: Uint8Array, i: number): number {
  const c = b[i];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

function escapedName(b: Uint8Array): string {
  let out = '';
  for (let i = 0; i < b.length; ) {
    const n = sequenceAt(b, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + b[i]);
      i++;
    } else {
      out += Buffer.from(b.buffer, b.byteOffset + i, n).toString('utf8');
      i += n;
    }
  }
  return out;
}

/** Whether `name` came from valid UTF-8 bytes (holds no escaped byte). */
export function isUtf8Name(name: string): boolean {
  return !ESCAPED.test(name);
}

/** The exact bytes of a name made by `nameOf` (UTF-8 for every other string). */
export function nameBytes(name: string): Buffer {
  if (!ESCAPED.test(name)) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let run = 0;
  for (let i = 0; i < name.length; i++) {
    const u = name.charCodeAt(i);
    const lone = u >= 0xdc80 && u <= 0xdcff && !(i > 0 && name.charCodeAt(i - 1) >= 0xd800 && name.charCodeAt(i - 1) <= 0xdbff);
    if (!lone) continue;
    parts.push(Buffer.from(name.slice(run, i), 'utf8'), Buffer.from([u - 0xdc00]));
    run = i + 1;
  }
  parts.push(Buffer.from(name.slice(run), 'utf8'));
  return Buffer.concat(parts);
}

/** A name for messages: escaped bytes shown as \xHH, so a one-line error stays readable and exact. */
export function showName(name: string): string {
  if (!ESCAPED.test(name)) return name;
  return name.replace(/(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/g, (c) => `\\x${(c.charCodeAt(0) - 0xdc00).toString(16)}`);
}
