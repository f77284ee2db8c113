import { closeSync, createReadStream, createWriteStream, openSync, promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { coalesce } from '../chunk.js';
import { BlockportError } from '../errors.js';
import { indexBase } from '../zip/base-index.js';
import { FileRange } from '../zip/file-range.js';
import { baseBudget, CopiedRanges, flattenBase } from '../zip/flatten-base.js';
import { FlatWriter } from '../zip/flat-writer.js';
import { looksLikeZip, ZipRefused } from '../zip/parse.js';
import { planZip, type ZipPlanStats } from '../zip/plan-zip.js';
import { BadRebuild, rebuildZip, Taker } from '../zip/rebuild.js';
import { BadPlan, decodeSegments, encodeSegments, outputLength, type Segment } from '../zip/segments.js';
import { encodePatch, encodeVcdiff, patchDecoder, patchEncoding, vcdiffDecoder } from './patch.js';

/** The first bytes of a `zip-delta` member: magic and format version 1 (docs/spec.md 14.10). */
export const ZIP_DELTA_MAGIC = Buffer.from('BPZIPD\x00\x01', 'latin1');
/** Magic, the inner patch's kind (0 zstd --patch-from, 1 VCDIFF), the plan's length (u32 BE). */
const HEADER = ZIP_DELTA_MAGIC.length + 1 + 4;
/** Plans above this are refused before being read (a plan is about 8 bytes per entry). */
export const MAX_PLAN = 64 << 20;

/** What a zip delta was made of: the entries planned and the sizes of its parts. */
export interface ZipDeltaResult {
  storedSize: number;
  stats: ZipPlanStats;
  planBytes: number;
  flatBytes: { base: number; target: number };
  inner: 'zstd-patch' | 'vcdiff';
}

/** Whether zip deltas are tried: yes unless BLOCKPORT_ZIP_DELTA=0 (which writes the byte deltas of earlier versions). */
export function zipDeltasEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.BLOCKPORT_ZIP_DELTA !== '0';
}

function withFd<T>(path: string, flags: string, fn: (fd: number) => T): T {
  const fd = openSync(path, flags);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes the flat form of the old zip (flattenBase) to `out`; returns its size. */
export function writeBaseFlat(base: { path: string; size: number }, segments: Segment[], out: string): number {
  return withFd(base.path, 'r', (fd) => withFd(out, 'w', (ofd) => {
    const w = new FlatWriter(ofd);
    flattenBase(new FileRange(fd, 0, base.size), w, new CopiedRanges(segments), baseBudget(base.size));
    w.flush();
    return w.length;
  }));
}

/** Plans the new zip against the old one, writing its flat stream to `out`; undefined when it is refused as a zip. */
function planTarget(base: { path: string; size: number }, target: { path: string; size: number }, out: string): { segments: Segment[]; stats: ZipPlanStats; flat: number } | undefined {
  return withFd(base.path, 'r', (bfd) => withFd(target.path, 'r', (tfd) => {
    const z = new FileRange(tfd, 0, target.size);
    if (!looksLikeZip(z)) return undefined;
    return withFd(out, 'w', (ofd) => {
      const w = new FlatWriter(ofd);
      try {
        const r = planZip(z, indexBase(new FileRange(bfd, 0, base.size)), w);
        w.flush();
        return { ...r, flat: w.length };
      } catch (err) {
        if (err instanceof ZipRefused) return undefined;
        throw err;
      }
    });
  }));
}

/**
 * Encodes the zip `target` against the old zip `base` as a `zip-delta` member at `out`: the plan
 * (segments) and a patch (zstd --patch-from, or VCDIFF for big pairs) that rebuilds the new zip's
 * flat stream from the old zip's flat form. Every deflate segment was re-created and compared by
 * planZip. Undefined (nothing written) when the target is refused as a zip or no entry gains.
 */
export async function encodeZipDelta(base: { path: string; size: number }, target: { path: string; size: number }, out: string, opts: { what: string; zstdLimit: number }): Promise<ZipDeltaResult | undefined> {
  const tmp = await fsp.mkdtemp(join(dirname(out), 'zip-'));
  try {
    const plan = planTarget(base, target, join(tmp, 'target.flat'));
    if (!plan || plan.stats.copied + plan.stats.deflated === 0) return undefined;
    const baseFlat = writeBaseFlat(base, plan.segments, join(tmp, 'base.flat'));
    const inner = patchEncoding(baseFlat, plan.flat, opts.zstdLimit);
    const patch = join(tmp, 'patch');
    const b = { path: join(tmp, 'base.flat'), size: baseFlat };
    const t = { path: join(tmp, 'target.flat'), size: plan.flat };
    if (inner === 'vcdiff') await encodeVcdiff(b, t, patch, opts.what);
    else await encodePatch(b, t, patch, opts.what);
    const planBytes = encodeSegments(plan.segments);
    const head = Buffer.alloc(HEADER);
    ZIP_DELTA_MAGIC.copy(head);
    head[ZIP_DELTA_MAGIC.length] = inner === 'vcdiff' ? 1 : 0;
    head.writeUInt32BE(planBytes.length, ZIP_DELTA_MAGIC.length + 1);
    await pipeline(async function* () {
      yield head;
      yield planBytes;
      yield* createReadStream(patch, { highWaterMark: 1 << 20 });
    }, createWriteStream(out));
    const storedSize = (await fsp.stat(out)).size;
    return { storedSize, stats: plan.stats, planBytes: planBytes.length, flatBytes: { base: baseFlat, target: plan.flat }, inner };
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

async function concat(pieces: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of pieces) parts.push(p);
  return Buffer.concat(parts);
}

/** Reads the member's header and plan; checks the plan rebuilds exactly `size` bytes. */
async function readPlan(t: Taker, size: number, what: string): Promise<{ inner: number; segments: Segment[] }> {
  const head = await concat(t.take(HEADER));
  if (!head.subarray(0, ZIP_DELTA_MAGIC.length).equals(ZIP_DELTA_MAGIC)) throw new BlockportError('EUNSUPPORTED', `${what}: not a zip delta of format version 1`);
  const inner = head[ZIP_DELTA_MAGIC.length];
  const planLen = head.readUInt32BE(ZIP_DELTA_MAGIC.length + 1);
  if (inner > 1) throw new BlockportError('ECORRUPT', `${what}: unknown inner patch kind ${inner}`);
  if (planLen > MAX_PLAN) throw new BlockportError('ECORRUPT', `${what}: a plan of ${planLen} bytes is too large`);
  const segments = decodeSegments(await concat(t.take(planLen)));
  const total = segments.reduce((n, s) => n + outputLength(s), 0);
  if (total !== size) throw new BlockportError('ECORRUPT', `${what}: the plan rebuilds ${total} bytes where the blob has ${size}`);
  return { inner, segments };
}

async function* decodeZipDelta(source: AsyncIterable<Buffer>, base: { path: string; size: number }, size: number, what: string): AsyncGenerator<Buffer> {
  const t = new Taker(source);
  let plan: { inner: number; segments: Segment[] };
  try {
    plan = await readPlan(t, size, what);
  } catch (err) {
    if (err instanceof BadPlan || err instanceof BadRebuild) throw new BlockportError('ECORRUPT', `${what}: ${err.message}`);
    throw err;
  }
  const tmp = await fsp.mkdtemp(join(tmpdir(), 'blockport-zip-'));
  const fd = openSync(base.path, 'r');
  let dec: Duplex | undefined;
  try {
    const flat = join(tmp, 'base.flat');
    writeBaseFlat(base, plan.segments, flat);
    const d = plan.inner === 1 ? vcdiffDecoder(flat, what) : patchDecoder(flat, what);
    dec = d;
    const rest = Readable.from(t.rest());
    rest.on('error', (err) => d.destroy(err));
    rest.pipe(d);
    // one entry is a few kB: joined into 256 KiB chunks, the hashing and writing after pay per chunk
    yield* coalesce(rebuildZip(plan.segments, d, new FileRange(fd, 0, base.size)));
  } catch (err) {
    if (err instanceof BadRebuild || err instanceof BadPlan) throw new BlockportError('ECORRUPT', `${what}: ${err.message}`);
    throw err;
  } finally {
    dec?.destroy();
    closeSync(fd);
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * A stream that turns a `zip-delta` member back into the zip of `size` bytes, given the old zip's
 * file (a prerequisite): the old zip's flat form is written to a temp folder for the inner patch.
 * The output is not verified here: the caller checks the blob's digest and size.
 */
export function zipDeltaDecoder(basePath: string, baseSize: number, size: number, what: string): Duplex {
  return Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    yield* decodeZipDelta(source, { path: basePath, size: baseSize }, size, what);
  });
}
