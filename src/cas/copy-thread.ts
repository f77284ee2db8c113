// The worker side of copy-plan.ts: executes one copy job at a time with synchronous positional
// I/O (a blocked worker costs nothing; the main thread goes on planning). Every byte written is
// hashed here (unless the job says its bytes are known good), so the digest costs no main-thread
// time and no extra pass.
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { CopyReply, CopyRequest } from './copy-plan.js';

/** Bytes gathered before one write (and one hash update). */
const OUT = 1 << 20;
/** Source files kept open per job; a folder block's members come from one file in a row. */
const OPEN_FILES = 64;

interface Job {
  id: number;
  /** -1: hash only, write nothing. */
  out: number;
  /** File offset of the next write. */
  pos: number;
  /** Absent: the bytes are not hashed (their digest was verified before). */
  hash?: Hash;
  buf: Buffer;
  fill: number;
  written: number;
  paths: string[];
  fds: Map<string, number>;
}

let job: Job | undefined;
/** One write buffer for every job: a new one per job would pile up until this small heap collects. */
const buffer = Buffer.allocUnsafe(OUT);

/** A failure a user can act on, named like BlockportError (the class does not cross threads). */
class CopyFailure extends Error {
  constructor(readonly code: string, message: string, readonly subject?: string) {
    super(message);
  }
}

function reply(m: CopyReply): void {
  parentPort!.postMessage(m);
}

function fdOf(j: Job, path: string): number {
  let fd = j.fds.get(path);
  if (fd !== undefined) return fd;
  if (j.fds.size >= OPEN_FILES) {
    const [oldest, ofd] = j.fds.entries().next().value as [string, number];
    closeSync(ofd);
    j.fds.delete(oldest);
  }
  fd = openSync(path, 'r');
  j.fds.set(path, fd);
  return fd;
}

function flush(j: Job): void {
  if (j.fill === 0) return;
  const data = j.buf.subarray(0, j.fill);
  j.hash?.update(data);
  if (j.out >= 0) for (let done = 0; done < j.fill; ) done += writeSync(j.out, data, done, j.fill - done, j.pos + done);
  j.pos += j.fill;
  j.written += j.fill;
  j.fill = 0;
}

function copyLiteral(j: Job, src: Uint8Array): void {
  for (let at = 0; at < src.length; ) {
    const n = Math.min(src.length - at, OUT - j.fill);
    j.buf.set(src.subarray(at, at + n), j.fill);
    j.fill += n;
    at += n;
    if (j.fill === OUT) flush(j);
  }
}

function copyRange(j: Job, path: string, offset: number, size: number): void {
  const fd = fdOf(j, path);
  for (let done = 0; done < size; ) {
    const n = readSync(fd, j.buf, j.fill, Math.min(size - done, OUT - j.fill), offset + done);
    if (n === 0) throw new CopyFailure('EDIGEST', `${path}: ends before byte ${offset + size} (a blob file is shorter than its descriptor)`, path);
    j.fill += n;
    done += n;
    if (j.fill === OUT) flush(j);
  }
}

function close(): void {
  if (!job) return;
  for (const fd of job.fds.values()) closeSync(fd);
  if (job.out >= 0) closeSync(job.out);
  job = undefined;
}

parentPort!.on('message', (m: CopyRequest) => {
  if (m.type === 'drop') {
    // answered even for a job that failed here already: the caller waits for it before it
    // removes the output, so this thread cannot create that file after it was removed
    if (job?.id === m.id) close();
    reply({ type: 'dropped', id: m.id });
    return;
  }
  // what is left of a job that failed or was dropped is ignored
  if (m.type !== 'start' && job?.id !== m.id) return;
  try {
    if (m.type === 'start') {
      close();
      job = { id: m.id, out: m.out === '' ? -1 : openSync(m.out, m.create ? 'wx' : 'r+', 0o644), pos: m.at, hash: m.hash ? createHash('sha256') : undefined, buf: buffer, fill: 0, written: 0, paths: [], fds: new Map() };
    } else if (m.type === 'batch') {
      const j = job!;
      j.paths.push(...m.paths);
      const before = j.written + j.fill;
      const lits = new Uint8Array(m.literals);
      for (let k = 0; k < m.pieces.length; k += 3) {
        const [file, offset, size] = [m.pieces[k], m.pieces[k + 1], m.pieces[k + 2]];
        if (file < 0) copyLiteral(j, lits.subarray(offset, offset + size));
        else copyRange(j, j.paths[file], offset, size);
      }
      reply({ type: 'ack', id: m.id, bytes: j.written + j.fill - before });
    } else if (m.type === 'end') {
      const j = job!;
      flush(j);
      reply({ type: 'done', id: m.id, hex: j.hash?.digest('hex') ?? '', size: j.written });
      close();
    } else close();
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { subject?: string };
    reply({ type: 'error', id: m.id, code: e.code ?? 'EIO', message: e.message, subject: e.subject ?? e.path, system: !(err instanceof CopyFailure) });
    try {
      close();
    } catch {
      job = undefined;
    }
  }
});
