import { RegistryError } from './registry-error.js';

/** An inclusive byte range of a blob. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The one range of a `Range: bytes=...` header (RFC 9110 14.2) within a blob of `size` bytes:
 * `a-b`, `a-` or `-n`; the end is clipped to the blob. Undefined without a header. Several ranges,
 * other units, malformed or unsatisfiable ranges are refused with 416 and `Content-Range: bytes
 * *\/size`: clients that resume a download send one range, and a wrong one should fail loudly.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const refuse = () => new RegistryError(416, 'RANGE_INVALID', `range ${JSON.stringify(header)} not satisfiable for ${size} bytes`, { 'Content-Range': `bytes */${size}` });
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) throw refuse();
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) throw refuse();
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) throw refuse();
  }
  if (start >= size || !Number.isSafeInteger(start) || !Number.isSafeInteger(end)) throw refuse();
  return { start, end };
}
