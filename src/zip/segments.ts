import { checkParams, type DeflateParams } from './deflate.js';

/**
 * How a zip is rebuilt, in file order. `raw` and `deflate` read their bytes from the flat stream
 * (the zip's structure and the uncompressed bytes of entries, see planZip): `raw` copies them,
 * `deflate` deflates `size` of them with `params` into exactly `compressedSize` bytes. `copy` takes
 * `length` bytes at `offset` of the receiver's old zip (an entry's data that did not change).
 */
export type Segment =
  | { kind: 'raw'; length: number }
  | { kind: 'copy'; offset: number; length: number }
  | { kind: 'deflate'; params: DeflateParams; size: number; compressedSize: number };

/** Bytes of the zip a segment gives. */
export function outputLength(s: Segment): number {
  return s.kind === 'deflate' ? s.compressedSize : s.length;
}

/** Bytes of the flat stream a segment reads. */
export function flatLength(s: Segment): number {
  return s.kind === 'raw' ? s.length : s.kind === 'deflate' ? s.size : 0;
}

/** Appends a segment, merging it into the last one when both are raw or both copy adjacent ranges. */
export function pushSegment(list: Segment[], s: Segment): void {
  const last = list.at(-1);
  if (last?.kind === 'raw' && s.kind === 'raw') last.length += s.length;
  else if (last?.kind === 'copy' && s.kind === 'copy' && last.offset + last.length === s.offset) last.length += s.length;
  else if (outputLength(s) > 0 || s.kind === 'deflate') list.push(s);
}

function putVarint(out: number[], n: number): void {
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

const KIND = { raw: 0, copy: 1, deflate: 2 } as const;

/** The binary plan: a varint count, then per segment its kind byte and varint fields (docs/spec.md 14.10). */
export function encodeSegments(list: Segment[]): Buffer {
  const out: number[] = [];
  putVarint(out, list.length);
  for (const s of list) {
    out.push(KIND[s.kind]);
    if (s.kind === 'raw') putVarint(out, s.length);
    else if (s.kind === 'copy') [s.offset, s.length].forEach((n) => putVarint(out, n));
    else [s.params.level, s.params.memLevel, s.params.windowBits, s.params.strategy, s.size, s.compressedSize].forEach((n) => putVarint(out, n));
  }
  return Buffer.from(out);
}

/** Thrown for a malformed plan; the caller words it as ECORRUPT. */
export class BadPlan extends Error {}

/** Parses encodeSegments' output; every field checked (at most 2^53 - 1, parameters in range). */
export function decodeSegments(b: Buffer): Segment[] {
  let p = 0;
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (;;) {
      if (p >= b.length) throw new BadPlan('truncated plan');
      const x = b[p++];
      n += (x & 0x7f) * mul;
      if (n > Number.MAX_SAFE_INTEGER) throw new BadPlan('a plan field is out of range');
      if (x < 0x80) return n;
      mul *= 0x80;
    }
  };
  const count = varint();
  if (count > b.length) throw new BadPlan('a plan counts more segments than it has bytes');
  const list: Segment[] = [];
  for (let i = 0; i < count; i++) {
    if (p >= b.length) throw new BadPlan('truncated plan');
    const kind = b[p++];
    if (kind === 0) list.push({ kind: 'raw', length: varint() });
    else if (kind === 1) list.push({ kind: 'copy', offset: varint(), length: varint() });
    else if (kind === 2) {
      const params = { level: varint(), memLevel: varint(), windowBits: varint(), strategy: varint() };
      if (!checkParams(params)) throw new BadPlan('deflate parameters out of range');
      list.push({ kind: 'deflate', params, size: varint(), compressedSize: varint() });
    } else throw new BadPlan(`unknown segment kind ${kind}`);
  }
  if (p !== b.length) throw new BadPlan('bytes after the last segment');
  return list;
}
