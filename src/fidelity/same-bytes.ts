import type { Readable } from 'node:stream';

/** How far two streams agreed: `equal` when byte for byte to the end of both. */
export interface Comparison {
  equal: boolean;
  /** Bytes that matched before the first difference (or before one stream ended). */
  matched: number;
}

/**
 * Compares two streams as they arrive and stops at the first byte that differs, destroying both:
 * a compressor that writes other bytes is usually found out within its first output block, so a
 * wrong candidate costs milliseconds, not a run over the whole layer. Memory: one chunk of each.
 */
export async function sameBytes(actual: Readable, expected: Readable): Promise<Comparison> {
  const exp = expected[Symbol.asyncIterator]();
  let pending: Buffer = Buffer.alloc(0);
  let matched = 0;
  let expectedDone = false;
  const more = async (): Promise<boolean> => {
    if (expectedDone) return false;
    const r = await exp.next();
    if (r.done) {
      expectedDone = true;
      return false;
    }
    pending = r.value as Buffer;
    return true;
  };
  try {
    for await (const c of actual) {
      let chunk = c as Buffer;
      while (chunk.length > 0) {
        if (pending.length === 0 && !(await more())) return { equal: false, matched };
        const n = Math.min(chunk.length, pending.length);
        if (!chunk.subarray(0, n).equals(pending.subarray(0, n))) {
          return { equal: false, matched: matched + firstDifference(chunk, pending, n) };
        }
        matched += n;
        chunk = chunk.subarray(n);
        pending = pending.subarray(n);
      }
    }
    while (pending.length === 0) if (!(await more())) return { equal: true, matched };
    return { equal: false, matched };
  } finally {
    actual.destroy();
    if (!expectedDone) await exp.return?.();
    expected.destroy();
  }
}

function firstDifference(a: Buffer, b: Buffer, n: number): number {
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
