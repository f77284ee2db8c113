// The worker side of offload.ts: hashes the chunks the main thread puts into the shared ring,
// in order, and frees each slot as soon as it is hashed. Signalling is by Atomics on the shared
// memory (a message per chunk costs more than hashing it).
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { END, DROP, HEAD, MAIN_WAITS, META, TAIL, THREAD_WAITS, type RingLayout } from './ring.js';

const { shared, slots, slotSize } = workerData as RingLayout;
const ctrl = new Int32Array(shared, 0, META + 2 * slots);
const data = (slot: number, length: number) => new Uint8Array(shared, ctrl.byteLength + slot * slotSize, length);
const hashes = new Map<number, Hash>();

for (let tail = 0; ; ) {
  // a bounded wait: the thread notices promptly, and never blocks its own shutdown for long
  while (Atomics.load(ctrl, HEAD) === tail) {
    Atomics.store(ctrl, THREAD_WAITS, 1);
    if (Atomics.load(ctrl, HEAD) === tail) Atomics.wait(ctrl, HEAD, tail, 200);
    Atomics.store(ctrl, THREAD_WAITS, 0);
  }
  const slot = tail % slots;
  const id = ctrl[META + 2 * slot];
  const length = ctrl[META + 2 * slot + 1];
  if (length === END) {
    const h = hashes.get(id) ?? createHash('sha256');
    hashes.delete(id);
    parentPort!.postMessage({ id, hex: h.digest('hex') });
  } else if (length === DROP) hashes.delete(id);
  else {
    let h = hashes.get(id);
    if (!h) hashes.set(id, (h = createHash('sha256')));
    h.update(data(slot, length));
  }
  tail++;
  Atomics.store(ctrl, TAIL, tail);
  if (Atomics.load(ctrl, MAIN_WAITS) === 1) Atomics.notify(ctrl, TAIL);
}
