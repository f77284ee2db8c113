// Per-file dedup, the way zstd:chunked-style pulls work: the receiver fetches, compressed one by
// one, the regular files of the new image whose content digest its old image does not hold.
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { posix, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { openUncompressed } from '../src/oci/compression.js';
import { openDockerArchive } from '../src/oci/docker-archive.js';
import { cleanPath } from '../src/tar/path.js';
import { TarReader, type TarEntry } from '../src/tar/reader.js';
import { mapLimit } from './exec.js';
import { countOutput } from './measure-exec.js';

/** A regular file of a flattened image. */
export interface FlatFile {
  digest: string;
  size: number;
  /** Index of the layer the file's final version comes from. */
  layer: number;
}

/** The regular files of an image after applying its layers in order (whiteouts included), by path. */
export type FlatImage = Map<string, FlatFile>;

/** What one layer contributes: its whiteouts and its entries (null: a non-regular entry at that path). */
export interface LayerChanges {
  /** Paths removed from the layers below (`.wh.NAME`), and folders emptied (`.wh..wh..opq`). */
  whiteouts: { path: string; opaque: boolean }[];
  entries: Map<string, FlatFile | null>;
}

/** Applies one layer on top of `flat`: whiteouts hide lower files only, then the layer's entries land. */
export function applyLayer(flat: FlatImage, layer: LayerChanges): void {
  for (const w of layer.whiteouts) {
    const prefix = w.path === '' ? '' : `${w.path}/`;
    if (!w.opaque) flat.delete(w.path);
    for (const p of flat.keys()) if (p.startsWith(prefix)) flat.delete(p);
  }
  for (const [path, f] of layer.entries) {
    if (f) flat.set(path, f);
    else flat.delete(path);
  }
}

/** Reads a tar entry's name as a layer change: a whiteout, or a path. */
export function classify(name: string): { whiteout?: { path: string; opaque: boolean }; path: string } {
  const path = cleanPath(name);
  const base = posix.basename(path);
  const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
  if (base === '.wh..wh..opq') return { whiteout: { path: dir, opaque: true }, path };
  if (base.startsWith('.wh.')) return { whiteout: { path: dir ? `${dir}/${base.slice(4)}` : base.slice(4), opaque: false }, path };
  return { path };
}

/** Calls `visit` for every entry of every layer of a docker-archive, in order. */
async function eachEntry(archive: string, visit: (layer: number, e: TarEntry) => Promise<void>, onLayerEnd?: (layer: number) => void): Promise<void> {
  const img = await openDockerArchive(archive, undefined, `docker-archive:${archive}`);
  try {
    for (const [i, desc] of img.manifest.layers.entries()) {
      const stream = await openUncompressed(await img.openBlob(desc), `${archive} layer ${i}`);
      for await (const e of new TarReader(stream, `${archive} layer ${i}`).entries()) await visit(i, e);
      onLayerEnd?.(i);
    }
  } finally {
    await img.close();
  }
}

/** Flattens a docker-archive: the sha256 and size of every regular file the container would see. */
export async function flattenArchive(archive: string): Promise<FlatImage> {
  const flat: FlatImage = new Map();
  let layer: LayerChanges = { whiteouts: [], entries: new Map() };
  await eachEntry(archive, async (i, e) => {
    const c = classify(e.header.path);
    if (c.whiteout) return void layer.whiteouts.push(c.whiteout);
    if (c.path === '' || e.header.type === 'dir') return;
    if (e.header.type !== 'file') return void layer.entries.set(c.path, null);
    const h = createHash('sha256');
    for await (const chunk of e.body()) h.update(chunk);
    layer.entries.set(c.path, { digest: h.digest('hex'), size: e.header.size, layer: i });
  }, () => {
    applyLayer(flat, layer);
    layer = { whiteouts: [], entries: new Map() };
  });
  return flat;
}

/** The per-file dedup cost of an upgrade. */
export interface PerFileResult {
  /** Distinct new contents the receiver fetches. */
  files: number;
  /** Their uncompressed bytes. */
  rawBytes: number;
  /** The sum of `zstd -3` of each, compressed on its own. */
  bytes: number;
}

/** Files of `next` (distinct by digest, non-empty) whose content `prev` lacks, keyed by digest. */
export function newFiles(prev: FlatImage, next: FlatImage): Map<string, { path: string; file: FlatFile }> {
  const have = new Set([...prev.values()].map((f) => f.digest));
  const out = new Map<string, { path: string; file: FlatFile }>();
  for (const [path, file] of next) {
    if (file.size > 0 && !have.has(file.digest) && !out.has(file.digest)) out.set(file.digest, { path, file });
  }
  return out;
}

/**
 * Compresses each file of `next` that `prev` lacks with `zstd -3`, each file its own frame (zstd
 * given many files with `-c` writes one frame per file, so the byte count is the sum of the
 * per-file sizes), in batches over two processes; the files are spooled to a temp folder first.
 */
export async function perFileDedup(nextArchive: string, prev: FlatImage, next: FlatImage): Promise<PerFileResult> {
  const want = newFiles(prev, next);
  const byLayerPath = new Map([...want.values()].map((w) => [`${w.file.layer}\0${w.path}`, w.file.digest]));
  const dir = await fsp.mkdtemp(join(tmpdir(), 'blockport-perfile-'));
  try {
    await eachEntry(nextArchive, async (i, e) => {
      if (e.header.type !== 'file') return;
      const digest = byLayerPath.get(`${i}\0${cleanPath(e.header.path)}`);
      if (digest) await pipeline(e.body(), createWriteStream(join(dir, digest)));
    });
    const names = [...want.keys()].map((d) => join(dir, d));
    const batches: string[][] = [];
    for (let i = 0; i < names.length; i += 256) batches.push(names.slice(i, i + 256));
    const sizes = await mapLimit(batches, 2, (b) => countOutput('zstd', ['-3', '-q', '-T1', '-c', ...b]));
    const rawBytes = [...want.values()].reduce((n, w) => n + w.file.size, 0);
    return { files: want.size, rawBytes, bytes: sizes.reduce((a, b) => a + b, 0) };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
