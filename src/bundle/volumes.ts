import { createReadStream, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
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
  const later = (await laterVolumes(base)).filter((n) => n > out.length);
  if (later.length) throw new BlockportError('ENOTFOUND', `volume ${out.length + 1} of ${base} is missing (found volumes 1-${out.length} and ${later.join(', ')})`, { subject: volumeName(base, out.length + 1) });
  return out;
}

/** The numbers of the volumes of `base` in its folder. */
async function laterVolumes(base: string): Promise<number[]> {
  const dir = dirname(base);
  const prefix = `${basename(base)}.`;
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith(prefix) && /^\d{3,}$/.test(n.slice(prefix.length))).map((n) => Number(n.slice(prefix.length))).sort((a, b) => a - b);
}

/**
 * Splits an `apply` command line into bundles: each argument is a bundle, except FILE.002,
 * FILE.003... right after FILE.001 (or the volume before them), which are volumes of that one.
 * A volume named without the one before it is refused: a bundle never starts mid-way.
 */
export function groupBundles(args: string[]): string[][] {
  const groups: string[][] = [];
  for (const a of args) {
    const m = /^(.*)\.(\d{3,})$/.exec(a);
    const n = m ? Number(m[2]) : 0;
    const last = groups.at(-1);
    const prev = last?.at(-1);
    if (m && n > 1) {
      if (prev === volumeName(m[1], n - 1)) {
        last!.push(a);
        continue;
      }
      throw new BlockportError('EUSAGE', `${a}: volume ${n} of ${m[1]} given without volume ${n - 1} before it (name FILE.001 alone: it finds the rest)`, { subject: a });
    }
    groups.push([a]);
  }
  return groups;
}

/**
 * When a bundle in volumes ends early: a hint that the next volume is missing, when every volume
 * has the same size (the writer fills each to --split, so a full last one means one more was cut).
 */
export async function missingVolumeHint(files: string[]): Promise<string | undefined> {
  const m = /^(.*)\.(\d{3,})$/.exec(files[0] ?? '');
  if (!m || Number(m[2]) !== 1) return undefined;
  const sizes = await Promise.all(files.map((f) => fsp.stat(f).then((s) => s.size, () => -1)));
  if (sizes.some((x) => x !== sizes[0])) return undefined;
  return `volume ${files.length + 1} of ${m[1]} is missing (the ${files.length} volume(s) found, ${sizes[0]} bytes each, end mid-bundle)`;
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
