// The worker side of deflate-pool.ts: deflates whole small entries with the plan's parameters and
// sends each result back as one transferred buffer.
import { parentPort } from 'node:worker_threads';
import type { DeflateParams } from './deflate.js';
import { deflaterFor } from './deflater.js';

parentPort!.on('message', (m: { id: number; params: DeflateParams; input: Uint8Array }) => {
  try {
    const parts: Buffer[] = [];
    deflaterFor(m.params).push(m.input, true, (b) => parts.push(b));
    const out = new Uint8Array(parts.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of parts) {
      out.set(b, at);
      at += b.length;
    }
    parentPort!.postMessage({ id: m.id, out }, [out.buffer]);
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: (err as Error).message });
  }
});
