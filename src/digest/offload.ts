import { Worker } from 'node:worker_threads';
import { BlockportError } from '../errors.js';
import { CHUNK } from '../chunk.js';
import type { Digest } from './digest.js';
import { DROP, END, HEAD, MAIN_WAITS, META, TAIL, THREAD_WAITS, type RingLayout } from './ring.js';

const SLOTS = 8;

/** Atomics.waitAsync (ES2024; in Node since 16), typed here because the project's lib is older. */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, index: number, value: number, timeout: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;

/**
 * One worker thread that computes sha256 for the main thread, so a command that must both verify
 * what it reads and hash what it writes uses both cores. Chunks are copied into a ring of shared
 * slots (2 MiB in all) and signalled with Atomics: memory stays bounded, nothing is cloned. The
 * thread starts on first use with a tiny V8 heap, and keeps the process alive only while it owes
 * a digest.
 */
class HashThread {
  private worker?: Worker;
  private readonly ring: RingLayout = { shared: new SharedArrayBuffer((META + 2 * SLOTS) * 4 + SLOTS * CHUNK), slots: SLOTS, slotSize: CHUNK };
  private readonly ctrl = new Int32Array(this.ring.shared, 0, META + 2 * SLOTS);
  private head = 0;
  private readonly digests = new Map<number, { resolve: (hex: string) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure?: Error;

  private start(): void {
    if (this.worker) return;
    const w = new Worker(new URL('./hash-thread.js', import.meta.url), {
      workerData: this.ring,
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 },
    });
    w.on('message', (m: { id: number; hex: string }) => {
      this.digests.get(m.id)?.resolve(m.hex);
      this.digests.delete(m.id);
      if (this.digests.size === 0) w.unref();
    });
    w.on('error', (e) => this.fail(e));
    w.on('exit', (code) => this.fail(new Error(`exited with code ${code}`)));
    w.unref();
    this.worker = w;
  }

  private fail(e: Error): void {
    this.failure ??= new BlockportError('EIO', `sha256 thread failed: ${e.message}`);
    for (const d of this.digests.values()) d.reject(this.failure);
    this.digests.clear();
  }

  open(): number {
    return this.nextId++;
  }

  /**
   * Waits for a free slot (the thread frees them in order), then fills it and publishes it with
   * no await in between, so concurrent hashes never take the same slot or publish out of order.
   */
  private async put(id: number, length: number, part?: Buffer): Promise<void> {
    this.start();
    for (;;) {
      if (this.failure) throw this.failure;
      const tail = Atomics.load(this.ctrl, TAIL);
      if (this.head - tail < SLOTS) break;
      Atomics.store(this.ctrl, MAIN_WAITS, 1);
      const w = waitAsync(this.ctrl, TAIL, tail, 1000);
      if (w.async) {
        // a pending waitAsync does not keep the event loop alive; the referenced worker does
        this.worker!.ref();
        await w.value;
        if (this.digests.size === 0) this.worker!.unref();
      }
      Atomics.store(this.ctrl, MAIN_WAITS, 0);
    }
    const slot = this.head % SLOTS;
    this.ctrl[META + 2 * slot] = id;
    this.ctrl[META + 2 * slot + 1] = length;
    if (part) part.copy(new Uint8Array(this.ring.shared, this.ctrl.byteLength + slot * CHUNK, part.length));
    this.head++;
    Atomics.store(this.ctrl, HEAD, this.head);
    if (Atomics.load(this.ctrl, THREAD_WAITS) === 1) Atomics.notify(this.ctrl, HEAD);
  }

  /** Copies `chunk` into the ring; resolves once it is queued (waits only when the ring is full). */
  async update(id: number, chunk: Buffer): Promise<void> {
    for (let off = 0; off < chunk.length; off += CHUNK) {
      const part = chunk.subarray(off, off + CHUNK);
      await this.put(id, part.length, part);
    }
  }

  async digest(id: number): Promise<string> {
    const hex = new Promise<string>((resolve, reject) => this.digests.set(id, { resolve, reject }));
    this.start();
    this.worker!.ref();
    await this.put(id, END);
    return hex;
  }

  /** Forgets a hash that will never be finished (its stream failed). */
  drop(id: number): void {
    if (this.worker && !this.failure) this.put(id, DROP).catch(() => {}); // a leaked hash object would be harmless
  }
}

let thread: HashThread | undefined;

/** Streams at least this large are hashed on the second thread; smaller ones are not worth a hand-off. */
export const OFFLOAD_MIN = 16 << 20;

/** An incremental sha256 computed on the hashing thread. `update` resolves once the chunk is queued. */
export class OffThreadHasher {
  private readonly t = (thread ??= new HashThread());
  private readonly id = this.t.open();
  /** The last queued update: calls made without waiting still land in call order. */
  private last: Promise<void> = Promise.resolve();
  size = 0;

  update(chunk: Buffer): Promise<void> {
    this.size += chunk.length;
    return (this.last = this.last.then(() => this.t.update(this.id, chunk)));
  }

  async digest(): Promise<Digest> {
    await this.last;
    return `sha256:${await this.t.digest(this.id)}` as Digest;
  }

  drop(): void {
    this.t.drop(this.id);
  }
}
