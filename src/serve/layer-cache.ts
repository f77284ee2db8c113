import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CHUNK } from '../chunk.js';
import type { FsBlobStore } from '../cas/blob-store.js';
import { digestHex, type Digest } from '../digest/digest.js';
import { BlockportError, fromSystemError } from '../errors.js';
import type { SplicedLayer } from './served-image.js';
import { SpliceJob } from './splice-job.js';

/** Splices at once: each takes a core (reading, hashing); clients ask for several layers in parallel. */
const SPLICES_AT_ONCE = 2;

/** How a layer's bytes were found, for the log and the summary. */
export type LayerOrigin = 'cache' | 'store' | 'splice';

/**
 * Standard layers of block-form images, spliced on their first request and kept as files under
 * `dir/sha256/<diff_id hex>`. A file appears there only verified against its diff_id (SpliceJob),
 * so later requests, ranges included, read it as it is. The folder may be removed while no server
 * uses it; it is filled again on demand.
 */
export class LayerCache {
  private readonly jobs = new Map<Digest, SpliceJob>();
  private running = 0;
  private readonly queue: (() => void)[] = [];
  /** Layers spliced since the start, and their bytes. */
  spliced = { layers: 0, bytes: 0 };

  constructor(
    readonly dir: string,
    private readonly store: FsBlobStore,
  ) {}

  path(d: Digest): string {
    return join(this.dir, 'sha256', digestHex(d));
  }

  /** Removes temp files that servers no longer running left in the cache. */
  async removeStaleTemps(): Promise<number> {
    const dir = join(this.dir, 'sha256');
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    let n = 0;
    for (const name of names) {
      const m = /^\..+\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
      if (!m || isAlive(Number(m[1]))) continue;
      await fsp.rm(join(dir, name), { force: true });
      n++;
    }
    return n;
  }

  /**
   * Bytes [start, end] of a spliced layer: from the store when it holds the standard layer as a
   * blob, from the cache file, or following the splice that writes it (started if none runs).
   */
  async open(layer: SplicedLayer, start: number, end: number): Promise<{ stream: Readable; origin: LayerOrigin }> {
    if ((await this.store.size(layer.digest)) === layer.size) {
      return { stream: await this.store.open(layer.digest, layer.size, start === 0 && end === layer.size - 1 ? {} : { start, end }), origin: 'store' };
    }
    const path = this.path(layer.digest);
    const st = await fsp.stat(path).catch(() => undefined);
    if (st?.isFile() && st.size === layer.size) return { stream: (await fsp.open(path, 'r')).createReadStream({ start, end, highWaterMark: CHUNK }), origin: 'cache' };
    const job = this.jobFor(layer, path);
    return { stream: Readable.from(follow(job, start, end + 1), { objectMode: false, highWaterMark: CHUNK }), origin: 'splice' };
  }

  private jobFor(layer: SplicedLayer, path: string): SpliceJob {
    const running = this.jobs.get(layer.digest);
    if (running && running.error === undefined) return running;
    const job = new SpliceJob(layer, path, () => this.slot());
    this.jobs.set(layer.digest, job);
    void job.finished.then(async () => {
      // a finished job's file is the cache file; a failed one is retried by the next request
      if (this.jobs.get(layer.digest) === job) this.jobs.delete(layer.digest);
      if (!job.done) return;
      this.spliced.layers++;
      this.spliced.bytes += layer.size;
      // best effort, as materialize does: the layer was just seen to splice into its diff_id
      await layer.record();
    });
    return job;
  }

  private async slot(): Promise<() => void> {
    while (this.running >= SPLICES_AT_ONCE) await new Promise<void>((r) => this.queue.push(r));
    this.running++;
    return () => {
      this.running--;
      this.queue.shift()?.();
    };
  }

  /** Stops every splice in progress and waits until their temp files are gone. */
  async close(): Promise<void> {
    const jobs = [...this.jobs.values()];
    for (const j of jobs) j.cancel();
    await Promise.all(jobs.map((j) => j.finished));
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Reads bytes [start, end) of the file a splice job writes, waiting for them as it grows. */
async function* follow(job: SpliceJob, start: number, end: number): AsyncGenerator<Buffer> {
  let pos = start;
  let fh: fsp.FileHandle | undefined;
  try {
    while (pos < end) {
      await job.waitFor(Math.min(pos + CHUNK, end));
      if (job.error !== undefined) throw job.error;
      const ready = Math.min(job.ready, end);
      if (ready <= pos) {
        if (job.done) throw new BlockportError('EDIGEST', `layer ${job.layer.digest}: cache file shorter than ${job.layer.size} bytes`, { subject: job.layer.digest });
        continue;
      }
      fh ??= await openJobFile(job);
      const buf = Buffer.allocUnsafe(Math.min(ready - pos, CHUNK));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new BlockportError('EIO', `layer ${job.layer.digest}: cache file ended early`, { subject: job.layer.digest });
      pos += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh?.close();
  }
}

/** Opens the job's file; if the temp file was just renamed, its new name. An open file stays readable through the rename. */
async function openJobFile(job: SpliceJob): Promise<fsp.FileHandle> {
  const first = job.file;
  try {
    return await fsp.open(first, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || job.file === first) throw job.error ?? fromSystemError(err, first);
    return fsp.open(job.file, 'r');
  }
}
