import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { tempFileOwner } from '../cas/atomic.js';
import { acquireLock, alive } from '../cas/lock.js';
import type { Digest } from '../digest/digest.js';
import { HashingStream } from '../digest/verify.js';
import { BlockportError } from '../errors.js';
import type { OciLayout } from '../oci/layout.js';
import { Annotation } from '../oci/media-types.js';
import { reachable } from '../oci/graph.js';
import { VerifiedLayers } from './verified.js';

export type ProblemKind = 'corrupt' | 'missing' | 'temp' | 'staging' | 'stray' | 'index';

export interface FsckProblem {
  kind: ProblemKind;
  /** The file or tag concerned. */
  subject: string;
  message: string;
  /** Set when --repair removed it. */
  repaired?: boolean;
}

export interface FsckReport {
  root: string;
  blobs: number;
  bytes: number;
  images: number;
  problems: FsckProblem[];
  /** Temp files of processes still running (a blockify in progress): not problems. */
  inUse: string[];
  /**
   * Records of verified layers dropped because a blob is corrupt (docs/spec.md 11.1): until apply
   * or materialize records them again, materialize hashes every layer and names the bad blob.
   */
  recordsDropped: number;
  /** Corrupt blobs `--repair` moved to quarantine/ in this run. */
  quarantined: string[];
  /** No problem is left unrepaired. */
  ok: boolean;
}

const BLOB_RE = /^[a-f0-9]{64}$/;


async function names(dir: string): Promise<string[]> {
  return fsp.readdir(dir).catch(() => [] as string[]);
}

const sink = () => new Writable({ write: (_c, _e, cb) => cb() });

/** Hashes every blob; a leftover temp file is a problem unless its writer is still alive. */
async function checkBlobs(layout: OciLayout, r: FsckReport, onProgress?: (done: number, total: number) => void): Promise<void> {
  const all = await names(layout.blobs.dir);
  const sizes = new Map<string, number>();
  for (const n of all) sizes.set(n, (await fsp.stat(join(layout.blobs.dir, n)).catch(() => undefined))?.size ?? 0);
  const total = [...sizes.values()].reduce((a, b) => a + b, 0);
  let done = 0;
  for (const n of all.sort()) {
    const path = join(layout.blobs.dir, n);
    if (BLOB_RE.test(n)) {
      const digest = `sha256:${n}` as Digest;
      try {
        await pipeline(await layout.blobs.open(digest), new HashingStream((k) => onProgress?.((done += k), total), false), sink());
        r.blobs++;
        r.bytes += sizes.get(n)!;
      } catch (err) {
        const why = err instanceof BlockportError ? err.message : `blob ${digest}: unreadable (${err instanceof Error ? err.message : err})`;
        r.problems.push({ kind: 'corrupt', subject: path, message: why });
      }
    } else if (!noteTemp(path, n, r)) {
      r.problems.push({ kind: 'stray', subject: path, message: `unexpected file in blobs/sha256: ${n}` });
    }
  }
}

/** Records a temp file; returns false when `name` is not one. */
function noteTemp(path: string, name: string, r: FsckReport): boolean {
  const owner = tempFileOwner(name);
  if (owner === undefined) return false;
  if (alive(owner)) r.inUse.push(path);
  else r.problems.push({ kind: 'temp', subject: path, message: `leftover temporary file of an interrupted write (process ${owner} is gone)` });
  return true;
}

/** Every tagged image must have every blob it reaches, at its size. */
async function checkImages(layout: OciLayout, r: FsckReport): Promise<void> {
  let index;
  try {
    index = await layout.readIndex();
  } catch (err) {
    // a store never written to (a first apply that failed) has no index.json and no blob: not a problem
    if (err instanceof BlockportError && err.code === 'ENOTFOUND' && r.blobs === 0) return;
    r.problems.push({ kind: 'index', subject: join(layout.root, 'index.json'), message: err instanceof Error ? err.message : String(err) });
    return;
  }
  for (const d of index.manifests) {
    const name = d.annotations?.[Annotation.refName] ?? d.digest;
    r.images++;
    try {
      const missing: Digest[] = [];
      for (const x of await reachable(d, (b) => layout.readBlob(b), name)) if ((await layout.blobs.size(x.digest)) !== x.size) missing.push(x.digest);
      if (missing.length) r.problems.push({ kind: 'missing', subject: name, message: `${name}: ${missing.length} blob(s) missing: ${missing.slice(0, 5).join(', ')}` });
    } catch (err) {
      r.problems.push({ kind: 'missing', subject: name, message: `${name}: ${err instanceof Error ? err.message : err}` });
    }
  }
}

async function checkLeftovers(layout: OciLayout, r: FsckReport): Promise<void> {
  for (const n of await names(layout.root)) noteTemp(join(layout.root, n), n, r);
  const staging = join(layout.root, 'staging');
  for (const n of await names(staging)) {
    r.problems.push({ kind: 'staging', subject: join(staging, n), message: `staged blobs of an interrupted apply (re-run that apply to finish it, or fsck --repair to delete them)` });
  }
}

async function dropRecords(layout: OciLayout): Promise<number> {
  const verified = new VerifiedLayers(layout.root);
  const all = await verified.list();
  for (const layer of all) await verified.forget(layer);
  return all.length;
}

/** Where `fsck --repair` moves corrupt blobs: out of blobs/, so apply or pull brings them again. */
export function quarantineDir(root: string): string {
  return join(root, 'quarantine', 'sha256');
}

/**
 * Moves a corrupt blob out of blobs/ (a rename, same file system): the store then lacks it, so
 * the next apply of a bundle that carries it (or a pull) writes a good copy. Kept, not deleted,
 * for whoever wants to see what rotted.
 */
async function quarantine(layout: OciLayout, path: string): Promise<string> {
  const dir = quarantineDir(layout.root);
  await fsp.mkdir(dir, { recursive: true });
  const name = basename(path);
  let to = join(dir, name);
  for (let n = 1; await fsp.stat(to).then(() => true, () => false); n++) to = join(dir, `${name}.${n}`);
  await fsp.rename(path, to);
  return to;
}

async function repair(layout: OciLayout, r: FsckReport): Promise<void> {
  for (const p of r.problems) {
    if (p.kind === 'corrupt') {
      const to = await quarantine(layout, p.subject);
      p.message += `; moved to ${to} (apply a bundle that carries it, or pull the image, to get it back)`;
      p.repaired = true;
      r.quarantined.push(to);
      continue;
    }
    if (p.kind !== 'temp' && p.kind !== 'staging') continue;
    await fsp.rm(p.subject, { recursive: true, force: true });
    p.repaired = true;
  }
}

/**
 * Checks the store under its lock: every blob's digest matches its name, every tagged image
 * reaches only present blobs, and no temp file or staging folder is left over. `repair` deletes
 * the leftovers and moves corrupt blobs to quarantine/ (never deletes a blob). When a blob is corrupt, the records of verified layers go (they
 * are only a cache): materialize then hashes again and names the blob.
 */
export interface FsckOptions {
  repair?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export async function fsck(layout: OciLayout, opts: FsckOptions = {}): Promise<FsckReport> {
  const st = await fsp.stat(layout.root).catch(() => undefined);
  if (!st?.isDirectory()) throw new BlockportError('ENOTFOUND', `${layout.root}: no store here`, { subject: layout.root });
  const lock = await acquireLock(join(layout.root, '.lock'), `the store ${layout.root}`);
  try {
    const r: FsckReport = { root: layout.root, blobs: 0, bytes: 0, images: 0, problems: [], inUse: [], recordsDropped: 0, quarantined: [], ok: true };
    await checkBlobs(layout, r, opts.onProgress);
    await checkImages(layout, r);
    await checkLeftovers(layout, r);
    // a rotten blob may lie under a layer recorded as verified, which materialize copies unhashed
    if (r.problems.some((p) => p.kind === 'corrupt')) r.recordsDropped = await dropRecords(layout);
    if (opts.repair) await repair(layout, r);
    // what the quarantine took is missing now: say which images need it again
    if (r.quarantined.length) {
      r.images = 0;
      r.problems = r.problems.filter((p) => p.kind !== 'missing');
      await checkImages(layout, r);
    }
    r.ok = r.problems.every((p) => p.repaired);
    return r;
  } finally {
    await lock.release();
  }
}
