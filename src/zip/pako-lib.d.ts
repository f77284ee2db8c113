// pako's zlib port as its own modules (pako 2.1.0, CommonJS): lets a deflate state be reset and
// reused, which pako's Deflate class does not offer.
declare module 'pako/lib/zlib/zstream.js' {
  class ZStream {
    input: Uint8Array | null;
    next_in: number;
    avail_in: number;
    output: Uint8Array | null;
    next_out: number;
    avail_out: number;
    msg: string;
    /** The deflate state (fields lm_init sets, see deflater.ts). */
    state: {
      w_size: number;
      window_size: number;
      head: Uint16Array;
      strstart: number;
      block_start: number;
      lookahead: number;
      insert: number;
      match_length: number;
      prev_length: number;
      match_available: number;
      ins_h: number;
    } | null;
  }
  export default ZStream;
}

declare module 'pako/lib/zlib/deflate.js' {
  import type ZStream from 'pako/lib/zlib/zstream.js';
  const deflate: {
    deflateInit2(strm: ZStream, level: number, method: number, windowBits: number, memLevel: number, strategy: number): number;
    deflateReset(strm: ZStream): number;
    deflateResetKeep(strm: ZStream): number;
    deflate(strm: ZStream, flush: number): number;
    deflateEnd(strm: ZStream): number;
  };
  export default deflate;
}
