import zlib from 'pako/lib/zlib/deflate.js';
import ZStream from 'pako/lib/zlib/zstream.js';
import type { DeflateParams } from './deflate.js';

const Z_FINISH = 4;
const Z_STREAM_END = 1;
const Z_DEFLATED = 8;
const OUT_CHUNK = 64 << 10;
const MIN_MATCH = 3;

/**
 * A raw deflate state of pako's zlib port, reset between streams (zlib's deflateReset) rather
 * than made anew: a jar has thousands of small entries, and a new state per entry (about 300 kB
 * of tables) cost more than deflating them (apply of java v1->v3: 1.2 s in deflateInit2 and 1.5 s
 * of garbage collection). Reset gives the same bytes as a new state, as in zlib.
 */
export class RawDeflater {
  private readonly strm = new ZStream();

  constructor(readonly params: DeflateParams) {
    const status = zlib.deflateInit2(this.strm, params.level, Z_DEFLATED, -params.windowBits, params.memLevel, params.strategy);
    if (status !== 0) throw new Error(`deflateInit2 failed (${status})`);
    this.strm.avail_out = 0;
  }

  /**
   * Feeds `input` (all of the stream's remaining input when `finish`), passing each full output
   * chunk (a fresh buffer, never reused) to `onData`. After `finish` the state is reset for the
   * next stream.
   */
  push(input: Uint8Array, finish: boolean, onData: (b: Buffer) => void): void {
    const s = this.strm;
    s.input = input;
    s.next_in = 0;
    s.avail_in = input.length;
    for (;;) {
      if (s.avail_out === 0) {
        s.output = new Uint8Array(OUT_CHUNK);
        s.next_out = 0;
        s.avail_out = OUT_CHUNK;
      }
      const status = zlib.deflate(s, finish ? Z_FINISH : 0);
      if (status === Z_STREAM_END) {
        // the stream's last piece is copied out, so the output buffer serves the next stream
        // (a new 64 KiB buffer per entry was most of the garbage)
        if (s.next_out > 0) onData(Buffer.from(s.output!.subarray(0, s.next_out)));
        s.next_out = 0;
        s.avail_out = OUT_CHUNK;
        s.input = null;
        resetState(s);
        return;
      }
      if (status < 0 && status !== -5) throw new Error(`deflate failed (${status}): ${s.msg}`);
      if (s.avail_out === 0) {
        onData(Buffer.from(s.output!.buffer, 0, OUT_CHUNK));
        continue;
      }
      if (s.avail_in === 0 && !finish) return;
    }
  }

  /** Drops a stream left unfinished (a comparison that stopped early). */
  reset(): void {
    this.strm.avail_out = 0; // a fresh output buffer: pieces of the old one may still be held
    resetState(this.strm);
  }
}

/**
 * zlib's deflateReset for pako's state: deflateResetKeep, then lm_init with the hash heads
 * cleared by fill (pako clears its 32,768 of them in a JS loop: 35 us per reset, most of the cost
 * of a jar's small entries). lm_init's level settings are left as deflateInit2 set them: the
 * level of a state never changes. The deflate tests compare the streams after a reset with those
 * of a new state.
 */
function resetState(strm: ZStream): void {
  if (zlib.deflateResetKeep(strm) !== 0) throw new Error('deflateResetKeep failed');
  const s = strm.state!;
  s.window_size = 2 * s.w_size;
  s.head.fill(0);
  s.strstart = 0;
  s.block_start = 0;
  s.lookahead = 0;
  s.insert = 0;
  s.match_length = s.prev_length = MIN_MATCH - 1;
  s.match_available = 0;
  s.ins_h = 0;
}

const cache = new Map<string, RawDeflater>();

/** The one deflater of this thread for `p` (a few parameter sets at most are ever used). */
export function deflaterFor(p: DeflateParams): RawDeflater {
  const key = `${p.level}/${p.memLevel}/${p.windowBits}/${p.strategy}`;
  let d = cache.get(key);
  if (!d) cache.set(key, (d = new RawDeflater(p)));
  return d;
}
