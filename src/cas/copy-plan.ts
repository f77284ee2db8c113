import { Worker } from 'node:worker_threads';
import { openFile } from './blob-store.js';
import type { Digest } from '../digest/digest.js';
import { BlockportError, fromSystemError, type ErrorCode } from '../errors.js';

/** Bytes [offset, offset + size) of a file. */
export interface FileRange {
  path: string;
  offset: number;
  size: number;
}

/**
 * A copy plan is a sequence of pieces: bytes at hand (tar headers, padding) or ranges of files
 * (layer entries taken verbatim, block contents). Materialize describes a spliced layer this way,
 * so its bytes move file to file without passing through JavaScript streams.
 */
export type Piece = Buffer | FileRange;

/** The bytes of a copy plan, its ranges read from their files (where a stream is needed). */
export async function* readPieces(pieces: AsyncIterable<Piece>): AsyncGenerator<Buffer> {
  for await (const p of pieces) {
    if (Buffer.isBuffer(p)) yield p;
    else if (p.size > 0) yield* openFile(p.path, p.offset, p.offset + p.size - 1);
  }
}

export type CopyRequest =
  | { type: 'start'; id: number; out: string; at: number; create: boolean; hash: boolean }
  | { type: 'batch'; id: number; paths: string[]; pieces: Float64Array; literals: ArrayBuffer }
  | { type: 'end'; id: number }
  | { type: 'drop'; id: number };

export type CopyReply =
  | { type: 'ack'; id: number; bytes: number }
  | { type: 'done'; id: number; hex: string; size: number }
  | { type: 'dropped'; id: number }
  | { type: 'error'; id: number; code: string; message: string; subject?: string; system: boolean };

/** A batch goes to the thread once it has this many pieces, literal bytes or range bytes. */
const BATCH_PIECES = 4096;
const BATCH_LITERALS = 1 << 20;
const BATCH_RANGE_BYTES = 16 << 20;
/** Batches sent and not yet done, per job: the planner stays a little ahead, memory stays bounded. */
const BATCHES_IN_FLIGHT = 4;

let nextJob = 1;

export interface CopyOptions {
  /** Told the bytes written as the thread writes them. */
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
  /** Create `out` (it must not exist; mode 0644) rather than write into an existing file. */
  create?: boolean;
}

interface RunningJob {
  id: number;
  /** The file written: named in a system error (a disk-full write has no path of its own). */
  out: string;
  ack(bytes: number): void;
  done(r: { hex: string; size: number }): void;
  fail(e: Error): void;
}

function replyError(m: Extract<CopyReply, { type: 'error' }>, out: string): Error {
  if (m.system) return fromSystemError(Object.assign(new Error(m.message), { code: m.code }), m.subject ?? out);
  return new BlockportError(m.code as ErrorCode, m.message, { subject: m.subject });
}

/** One worker thread (copy-thread.ts) running one job at a time. */
class CopyThread {
  readonly worker: Worker;
  private job?: RunningJob;
  private broken?: Error;
  /** Jobs dropped and not yet confirmed by the thread. */
  private readonly dropped = new Map<number, () => void>();

  constructor() {
    this.worker = new Worker(new URL('./copy-thread.js', import.meta.url), {
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 },
    });
    this.worker.on('message', (m: CopyReply) => {
      if (m.type === 'dropped') {
        this.dropped.get(m.id)?.();
        return;
      }
      const j = this.job;
      if (!j || m.id !== j.id) return;
      if (m.type === 'ack') j.ack(m.bytes);
      else if (m.type === 'done') j.done(m);
      else j.fail(replyError(m, j.out));
    });
    const broke = (e: Error) => {
      this.broken ??= new BlockportError('EIO', `copy thread failed: ${e.message}`);
      this.job?.fail(this.broken);
      for (const done of this.dropped.values()) done();
    };
    this.worker.on('error', broke);
    this.worker.on('exit', (code) => broke(new Error(`exited with code ${code}`)));
  }

  private post(m: CopyRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  /** Writes the plan's bytes at `at` in file `out`; resolves to their sha256 (hex, '' unless `hash`) and count. */
  async run(out: string, at: number, pieces: AsyncIterable<Piece>, { onBytes, signal, create = false }: CopyOptions, hash: boolean): Promise<{ hex: string; size: number }> {
    if (this.broken) throw this.broken;
    const id = nextJob++;
    let failure: Error | undefined;
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const finished = new Promise<{ hex: string; size: number }>((resolve, reject) => {
      this.job = {
        id,
        out,
        ack: (bytes) => {
          inFlight--;
          onBytes?.(bytes);
          wake?.();
        },
        done: resolve,
        fail: (e) => {
          failure ??= e;
          reject(e);
          wake?.();
        },
      };
    });
    finished.catch(() => {}); // awaited below, or the failure is rethrown by the planning loop

    const pathIndex = new Map<string, number>();
    let newPaths: string[] = [];
    let nums: number[] = [];
    let literals: Buffer[] = [];
    let literalBytes = 0;
    let rangeBytes = 0;
    const send = async () => {
      if (nums.length === 0) return;
      while (inFlight >= BATCHES_IN_FLIGHT && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) throw failure;
      const arena = new Uint8Array(literalBytes);
      let at = 0;
      for (const l of literals) {
        arena.set(l, at);
        at += l.length;
      }
      const batch = new Float64Array(nums);
      this.post({ type: 'batch', id, paths: newPaths, pieces: batch, literals: arena.buffer }, [arena.buffer, batch.buffer]);
      inFlight++;
      [newPaths, nums, literals, literalBytes, rangeBytes] = [[], [], [], 0, 0];
    };
    try {
      this.post({ type: 'start', id, out, at, create, hash });
      for await (const p of pieces) {
        if (failure) throw failure;
        signal?.throwIfAborted();
        if (Buffer.isBuffer(p)) {
          if (p.length === 0) continue;
          if (literalBytes + p.length > BATCH_LITERALS) await send();
          nums.push(-1, literalBytes, p.length);
          literals.push(p);
          literalBytes += p.length;
        } else {
          let file = pathIndex.get(p.path);
          if (file === undefined) {
            pathIndex.set(p.path, (file = pathIndex.size));
            newPaths.push(p.path);
          }
          // big ranges go in slices, so acks (progress, background fsyncs) come regularly
          for (let off = 0; off < p.size; ) {
            const n = Math.min(p.size - off, BATCH_RANGE_BYTES);
            const k = nums.length;
            if (k > 0 && nums[k - 3] === file && nums[k - 2] + nums[k - 1] === p.offset + off && nums[k - 1] + n <= BATCH_RANGE_BYTES) nums[k - 1] += n;
            else nums.push(file, p.offset + off, n);
            off += n;
            rangeBytes += n;
            if (rangeBytes >= BATCH_RANGE_BYTES) await send();
          }
        }
        if (nums.length >= 3 * BATCH_PIECES) await send();
      }
      await send();
      this.post({ type: 'end', id });
      return await finished;
    } catch (err) {
      if (!this.broken) {
        const confirmed = new Promise<void>((r) => this.dropped.set(id, r));
        this.post({ type: 'drop', id });
        await confirmed;
        this.dropped.delete(id);
      }
      throw failure ?? err;
    } finally {
      this.job = undefined;
    }
  }
}

/**
 * A few copy threads, each running one plan at a time: with two layers planned at once on two
 * cores, reading, hashing and writing run beside the planning (tar header parsing) on the main
 * thread. Synchronous positional I/O in the threads costs no event-loop round trip per chunk.
 */
export class CopyThreads {
  private readonly idle: CopyThread[];
  private readonly waiting: ((t: CopyThread) => void)[] = [];

  private constructor(private readonly all: CopyThread[]) {
    this.idle = [...all];
  }

  static start(n: number): CopyThreads {
    return new CopyThreads(Array.from({ length: Math.max(1, n) }, () => new CopyThread()));
  }

  /** Copies the plan to `at` in `out` ('' to only hash it) on a free thread; resolves to the bytes' sha256 and count. */
  async copy(out: string, at: number, pieces: AsyncIterable<Piece>, opts: CopyOptions = {}): Promise<{ digest: Digest; size: number }> {
    const r = await this.onThread((t) => t.run(out, at, pieces, opts, true));
    return { digest: `sha256:${r.hex}` as Digest, size: r.size };
  }

  /** Copies the plan to `at` in `out` without hashing (bytes whose digest was verified before); resolves to their count. */
  async write(out: string, at: number, pieces: AsyncIterable<Piece>, opts: CopyOptions = {}): Promise<number> {
    return (await this.onThread((t) => t.run(out, at, pieces, opts, false))).size;
  }

  private async onThread<T>(job: (t: CopyThread) => Promise<T>): Promise<T> {
    const t = this.idle.pop() ?? (await new Promise<CopyThread>((r) => this.waiting.push(r)));
    try {
      return await job(t);
    } finally {
      const next = this.waiting.shift();
      if (next) next(t);
      else this.idle.push(t);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((t) => t.worker.terminate()));
  }
}
