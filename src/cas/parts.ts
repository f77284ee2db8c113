import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { BlockportError, fromSystemError } from '../errors.js';
import { FlushBehind, fsyncDir, tempPathFor } from './atomic.js';
import { CHUNK } from '../chunk.js';
import { CopyThreads, type Piece } from './copy-plan.js';
import type { Digest } from '../digest/digest.js';

/**
 * A piece of a file at a known offset: bytes at hand, a stream of exactly `size` bytes, or a copy
 * plan of exactly `size` bytes run on a copy thread, whose sha256 is handed to `check` (which
 * throws to fail the file); without `check` the plan's bytes are not hashed at all.
 */
export type FilePart =
  | { offset: number; bytes: Buffer }
  | { offset: number; size: number; stream: () => AsyncIterable<Buffer> }
  | { offset: number; size: number; plan: () => AsyncIterable<Piece>; check?: (digest: Digest) => void };

/** Writes in flight per stream before it waits for the oldest (the producer keeps working meanwhile). */
const IN_FLIGHT = 8 * CHUNK;

/**
 * Writes a file made of parts at known offsets, atomically (temp file beside `path`, fsync,
 * rename, fsync of the folder), running up to `parallel` streamed parts at once with positional
 * writes: while one part waits for the disk or for its reads, another is produced. A failing
 * part stops the others; nothing is left behind. Part sizes are checked.
 */
export async function writePartsAtomic(path: string, parts: FilePart[], parallel = 2): Promise<void> {
  const tmp = tempPathFor(path);
  let fh: fsp.FileHandle | undefined;
  let threads: CopyThreads | undefined;
  try {
    fh = await fsp.open(tmp, 'wx', 0o644);
    const file = fh;
    const flush = new FlushBehind(file);
    const wrote = (n: number) => flush.wrote(n);
    for (const p of parts) if ('bytes' in p) await file.write(p.bytes, 0, p.bytes.length, p.offset);
    // the longest first: the last part to start is then a short one, and no thread idles long at the end
    const streams = parts.filter((p): p is Exclude<FilePart, { bytes: unknown }> => !('bytes' in p)).sort((a, b) => b.size - a.size);
    const planned = streams.filter((p) => 'plan' in p).length;
    threads = planned > 0 ? CopyThreads.start(Math.min(parallel, planned)) : undefined;
    const copier = threads;
    const stop = new AbortController();
    let failure: { err: unknown } | undefined;
    let next = 0;
    const worker = async () => {
      while (next < streams.length && !stop.signal.aborted) {
        const p = streams[next++];
        try {
          if ('plan' in p) {
            const opts = { onBytes: wrote, signal: stop.signal };
            const got = p.check ? await copier!.copy(tmp, p.offset, p.plan(), opts) : { size: await copier!.write(tmp, p.offset, p.plan(), opts) };
            if (got.size !== p.size) throw new BlockportError('EDIGEST', `part at ${p.offset}: ${got.size} bytes, ${p.size} promised`);
            if ('digest' in got) p.check!(got.digest);
          } else await writeStreamAt(file, p, wrote, stop.signal);
        } catch (err) {
          // the first failure is the one to report; the others only stopped because of it
          if (!stop.signal.aborted) failure = { err };
          stop.abort();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, streams.length)) }, worker));
    // no thread may still write once the file is closed or removed
    await threads?.close();
    threads = undefined;
    await flush.settled();
    if (failure) throw failure.err;
    await file.sync();
    await file.close();
    fh = undefined;
    await fsp.rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    await threads?.close();
    await fh?.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw fromSystemError(err, path);
  }
}

/** Streams one part to its offset, keeping up to IN_FLIGHT bytes of writes running. */
async function writeStreamAt(fh: fsp.FileHandle, p: { offset: number; size: number; stream: () => AsyncIterable<Buffer> }, wrote: (n: number) => void, signal: AbortSignal): Promise<void> {
  const inFlight: { done: Promise<unknown>; size: number }[] = [];
  let pending = 0;
  let pos = p.offset;
  const end = p.offset + p.size;
  try {
    for await (const chunk of p.stream()) {
      signal.throwIfAborted();
      if (pos + chunk.length > end) throw new BlockportError('EDIGEST', `part at ${p.offset}: more than its ${p.size} bytes`);
      inFlight.push({ done: fh.write(chunk, 0, chunk.length, pos), size: chunk.length });
      pos += chunk.length;
      pending += chunk.length;
      wrote(chunk.length);
      while (pending > IN_FLIGHT) {
        const w = inFlight.shift()!;
        await w.done;
        pending -= w.size;
      }
    }
  } finally {
    // every write must finish before the file is closed, even after a failure
    await Promise.allSettled(inFlight.map((w) => w.done));
  }
  for (const w of inFlight) await w.done;
  if (pos !== end) throw new BlockportError('EDIGEST', `part at ${p.offset}: ${pos - p.offset} of its ${p.size} bytes`);
}
