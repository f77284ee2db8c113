import { randomBytes } from 'node:crypto';
import { promises as fsp, createWriteStream } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fromSystemError } from '../errors.js';
import { alive } from './lock.js';
import { CHUNK } from '../chunk.js';

/** A unique temporary name beside `path`, so the final rename stays on one file system. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Temp names tempPathFor makes: `.NAME.tmp-PID-RANDOM` (the pid tells whether its writer still runs). */
const TEMP_RE = /^\.(.+)\.tmp-(\d+)-[0-9a-f]{8}$/;

/** The pid that wrote the temp file `name` (a name tempPathFor made), or undefined when it is none. */
export function tempFileOwner(name: string): number | undefined {
  const m = TEMP_RE.exec(name);
  return m ? Number(m[2]) : undefined;
}

/**
 * Removes the temp files killed writers left in `dir` (`.NAME.tmp-PID-*` whose process is gone;
 * only those of `name` when given): a materialize killed at 60 MB of a docker-archive otherwise
 * leaves them forever. Temp files of live processes (a concurrent writer) stay. Returns the
 * paths removed.
 */
export async function removeDeadTemps(dir: string, name?: string): Promise<string[]> {
  const removed: string[] = [];
  for (const n of await fsp.readdir(dir).catch(() => [] as string[])) {
    const m = TEMP_RE.exec(n);
    if (!m || (name !== undefined && m[1] !== name) || alive(Number(m[2]))) continue;
    await fsp.rm(join(dir, n), { recursive: true, force: true }).then(() => removed.push(join(dir, n)), () => {});
  }
  return removed;
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r').catch(() => undefined);
  if (!fh) return;
  try {
    await fh.sync();
  } catch {
    // some file systems refuse fsync on directories; the rename is still atomic
  } finally {
    await fh.close();
  }
}

/**
 * Bytes a file writer may hold while its writes run in the thread pool: with one chunk the
 * producer stalls on every write; 2 MiB lets it keep working (materialize of a 553 MB image
 * 3.6 s -> 3.2 s, same peak RSS).
 */
const WRITE_BEHIND = 8 * CHUNK;

/** Bytes written between two background flushes of a large file. */
const FLUSH_EVERY = 64 << 20;

/**
 * Starts writing a large file's data to the disk while it is still being produced (one
 * fdatasync in flight at a time, every FLUSH_EVERY bytes), so the fsync before the rename has
 * little left to wait for: without it the kernel holds gigabytes of dirty pages until that fsync,
 * and the disk sits idle while blockport hashes.
 */
export class FlushBehind {
  private since = 0;
  private inFlight?: Promise<void>;

  constructor(private readonly fh: fsp.FileHandle) {}

  /** Tells it `n` more bytes were written. */
  wrote(n: number): void {
    this.since += n;
    if (this.since < FLUSH_EVERY || this.inFlight) return;
    this.since = 0;
    this.inFlight = this.fh.datasync().catch(() => {}).finally(() => (this.inFlight = undefined));
  }

  /** Waits for the flush in flight, if any (before the file is closed). */
  async settled(): Promise<void> {
    await this.inFlight;
  }
}

/** A pass-through that flushes `fh` behind the bytes flowing into it (see FlushBehind). */
function flushBehind(fh: fsp.FileHandle): Transform {
  const flush = new FlushBehind(fh);
  return new Transform({
    highWaterMark: WRITE_BEHIND,
    transform(chunk: Buffer, _enc, cb) {
      flush.wrote(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      flush.settled().then(() => cb(), cb);
    },
  });
}

/** Flushes a file's data to the disk. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await fsp.open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` atomically: temp file, fsync, rename. Readers see old or new, never half. */
export async function writeFileAtomic(path: string, data: Buffer | string): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw fromSystemError(err, path);
  }
}

/**
 * Streams `source` through optional `transforms` into a temp file beside `path`, fsyncs, and only
 * then lets `commit` decide (it may verify and rename, or throw to discard). Nothing half-written
 * is ever visible at `path`.
 */
export async function streamToFileAtomic(
  path: string,
  source: Readable,
  transforms: NodeJS.ReadWriteStream[],
  commit: (tmp: string) => Promise<void> = (tmp) => fsp.rename(tmp, path),
  options: { sync?: boolean } = {},
): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644, highWaterMark: WRITE_BEHIND });
    const sync = options.sync !== false;
    // a second handle on the same file, for the background flushes and the final fsync
    const fh = sync ? await new Promise<fsp.FileHandle>((resolve, reject) => {
      out.once('open', () => fsp.open(tmp, 'r+').then(resolve, reject));
      out.once('error', reject);
    }) : undefined;
    try {
      await pipeline([source, ...transforms, ...(fh ? [flushBehind(fh)] : []), out] as unknown as NodeJS.ReadWriteStream[]);
      await fh?.sync();
    } finally {
      await fh?.close();
    }
    await commit(tmp);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw fromSystemError(err, path);
  }
}
