import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { DeflateParams } from './deflate.js';

/**
 * Worker threads that deflate whole entries for the rebuild of zips, so the receiver deflates on
 * every core while the main thread reads, copies and verifies. Started on first use, they keep the
 * process alive only while they owe a result.
 */
class DeflatePool {
  private workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private turn = 0;

  private start(): void {
    if (this.workers.length) return;
    const n = Math.max(1, Math.min(2, availableParallelism()));
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./deflate-thread.js', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: 64 } });
      w.on('message', (m: { id: number; out?: Uint8Array; error?: string }) => {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (m.out) p?.resolve(Buffer.from(m.out.buffer, m.out.byteOffset, m.out.length));
        else p?.reject(new Error(`deflate thread: ${m.error}`));
        if (this.pending.size === 0) this.workers.forEach((x) => x.unref());
      });
      const fail = (e: Error) => {
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
        this.workers = [];
      };
      w.on('error', fail);
      w.on('exit', (code) => fail(new Error(`deflate thread exited with code ${code}`)));
      w.unref();
      this.workers.push(w);
    }
  }

  /** The raw deflate stream of `input` with `params` (`input` is copied to the thread). */
  deflate(params: DeflateParams, input: Buffer): Promise<Buffer> {
    this.start();
    const id = this.nextId++;
    const w = this.workers[this.turn++ % this.workers.length];
    this.workers.forEach((x) => x.ref());
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, params, input });
    });
  }
}

export const deflatePool = new DeflatePool();
