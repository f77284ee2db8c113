import { createReadStream, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir, tempPathFor } from '../cas/atomic.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { CHUNK } from '../chunk.js';

/** The name of volume `n` (1-based) of a split bundle: FILE.001, FILE.002, ... */
export function volumeName(file: string, n: number): string {
  return `${file}.${String(n).padStart(3, '0')}`;
}

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then((s) => s.isFile(), () => false);
}

/**
 * Writes a byte stream to `file`, or when `split` is given to volumes of at most `split` bytes
 * (FILE.001, ...; `cat` joins them). Every volume goes to a temp name and is renamed only once the
 * whole stream is written and fsynced, so a failed write leaves no volume behind. Volumes of an
 * earlier, longer bundle with the same name are removed so none is mistaken for a continuation.
 */
export async function writeVolumes(chunks: AsyncIterable<Buffer>, file: string, split?: number): Promise<string[]> {
  if (split !== undefined && (!Number.isSafeInteger(split) || split < 1)) throw new BlockportError('EUSAGE', `invalid volume size ${split}`);
  const done: { tmp: string; final: string }[] = [];
  let fh: FileHandle | undefined;
  let used = 0;
  const next = async () => {
    if (fh) await fh.sync().then(() => fh!.close());
    const final = split === undefined ? file : volumeName(file, done.length + 1);
    const tmp = tempPathFor(final);
    fh = await fsp.open(tmp, 'wx', 0o644);
    done.push({ tmp, final });
    used = 0;
  };
  try {
    await next();
    for await (let chunk of chunks) {
      while (chunk.length) {
        if (split !== undefined && used === split) await next();
        const n = split === undefined ? chunk.length : Math.min(chunk.length, split - used);
        await fh!.write(chunk.subarray(0, n));
        used += n;
        chunk = chunk.subarray(n);
      }
    }
    await fh!.sync();
    await fh!.close();
    fh = undefined;
    for (const v of done) await fsp.rename(v.tmp, v.final);
    await fsyncDir(dirname(file));
  } catch (err) {
    await fh?.close().catch(() => {});
    for (const v of done) await fsp.rm(v.tmp, { force: true });
    throw fromSystemError(err, file);
  }
  if (split !== undefined) for (let n = done.length + 1; await exists(volumeName(file, n)); n++) await fsp.rm(volumeName(file, n));
  return done.map((v) => v.final);
}

/**
 * The files of a bundle, in order: the arguments as given, or when one is given, the volumes that
 * follow it (FILE.001 -> .002, ...; FILE -> FILE.001, ... when FILE itself does not exist).
 */
export async function findVolumes(files: string[]): Promise<string[]> {
  if (files.length !== 1) return files;
  const [f] = files;
  const m = /^(.*)\.(\d{3,})$/.exec(f);
  let base: string;
  if (m && Number(m[2]) === 1) base = m[1];
  else if (!(await exists(f)) && (await exists(volumeName(f, 1)))) base = f;
  else return files;
  const out: string[] = [];
  for (let n = 1; await exists(volumeName(base, n)); n++) out.push(volumeName(base, n));
  return out;
}

/** The bytes of `files` one after the other, read in 1 MiB chunks. */
export async function* concatFiles(files: string[]): AsyncGenerator<Buffer> {
  for (const f of files) {
    const s = createReadStream(f, { highWaterMark: CHUNK });
    try {
      for await (const chunk of s) yield chunk as Buffer;
    } catch (err) {
      throw fromSystemError(err, f);
    } finally {
      s.destroy();
    }
  }
}
