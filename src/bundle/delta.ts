import type { Digest } from '../digest/digest.js';
import { Annotation, isBlock } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';

/** What delta planning needs of one image: its layers and blocks as the manifest lists them (annotations kept). */
export interface DeltaImage {
  layers: Descriptor[];
  blocks: Descriptor[];
}

/** Why a base was chosen: same block path, same path once versions are removed, or same layer index. */
export type DeltaMatch = 'path' | 'stem' | 'loose-stem' | 'layer';

/** A blob to send and the blob the receiver holds that it may be encoded against. */
export interface DeltaCandidate {
  blob: Descriptor;
  base: Descriptor;
  match: DeltaMatch;
}

/** Blobs smaller than this travel as they are: a delta saves less than the zstd run costs. */
export const MIN_DELTA_SIZE = 4096;

/** The block path a descriptor was annotated with (the first path the block was seen at). */
export function blockPath(d: Descriptor): string | undefined {
  return d.annotations?.[Annotation.blockPath];
}

/**
 * The path with dotted version runs removed (`/usr/share/java/lib-foo-1.2.jar` ->
 * `/usr/share/java/lib-foo-.jar`, `guava-31.1-jre.jar` -> `guava--jre.jar`): a bumped dependency
 * keeps its stem. With `loose`, every digit run goes (`libfoo2.so` -> `libfoo.so`).
 */
export function versionStem(path: string, loose = false): string {
  return path.replace(loose ? /\d+/g : /\d+(?:\.\d+)+/g, '');
}

/** |log(a/b)|: how far apart two sizes are, whichever is larger. */
function sizeDistance(a: number, b: number): number {
  return Math.abs(Math.log((a + 1) / (b + 1)));
}

function closest(size: number, xs: Descriptor[]): Descriptor | undefined {
  let best: Descriptor | undefined;
  for (const x of xs) if (!best || sizeDistance(x.size, size) < sizeDistance(best.size, size)) best = x;
  return best;
}

/** No upper bound: pairs too big for zstd's window and memory are encoded by xdelta3 (patchEncoding). */
function worthADelta(d: Descriptor): boolean {
  return d.size >= MIN_DELTA_SIZE;
}

type Key = (path: string) => string;
const KEYS: [DeltaMatch, Key][] = [
  ['path', (p) => p],
  ['stem', (p) => versionStem(p)],
  ['loose-stem', (p) => versionStem(p, true)],
];

/** Groups `held` by key(path) and media type, so each lookup is one map access. */
function byKey(held: Descriptor[], key: Key): Map<string, Descriptor[]> {
  const out = new Map<string, Descriptor[]>();
  for (const h of held) {
    const p = blockPath(h);
    if (p === undefined) continue;
    const k = `${h.mediaType}\n${key(p)}`;
    out.set(k, [...(out.get(k) ?? []), h]);
  }
  return out;
}

/**
 * For each block in `send`, the held block of the same kind at the same path; else at the same
 * version stem (dotted versions removed), else the loose stem (every digit run removed); ties go
 * to the closest size. Blocks without a path and tiny ones get no base.
 */
export function pickBlockBases(send: Descriptor[], held: Descriptor[]): DeltaCandidate[] {
  const usable = held.filter(worthADelta);
  const tables = KEYS.map(([match, key]) => ({ match, key, map: byKey(usable, key) }));
  const out: DeltaCandidate[] = [];
  for (const blob of send) {
    const p = blockPath(blob);
    if (p === undefined || !isBlock(blob.mediaType) || !worthADelta(blob)) continue;
    for (const t of tables) {
      const base = closest(blob.size, (t.map.get(`${blob.mediaType}\n${t.key(p)}`) ?? []).filter((h) => h.digest !== blob.digest));
      if (base) {
        out.push({ blob, base, match: t.match });
        break;
      }
    }
  }
  return out;
}

/**
 * For each layer of a target that is sent, the layer at the same index of a held image with the
 * same media type (closest size when several images have one).
 */
export function pickLayerBases(target: DeltaImage, held: DeltaImage[], send: ReadonlySet<Digest>, holds: ReadonlySet<Digest>): DeltaCandidate[] {
  const out: DeltaCandidate[] = [];
  target.layers.forEach((blob, i) => {
    if (!send.has(blob.digest) || !worthADelta(blob)) return;
    const at = held.map((h) => h.layers[i]).filter((l): l is Descriptor => l !== undefined);
    const same = at.filter((l) => l.mediaType === blob.mediaType && l.digest !== blob.digest && holds.has(l.digest) && worthADelta(l));
    const base = closest(blob.size, same);
    if (base) out.push({ blob, base, match: 'layer' });
  });
  return out;
}

/**
 * Pure: every sent blob that has a base the receiver holds, each once. Blocks are matched by
 * path (see pickBlockBases), layers by index. `holds` guards that a base is really held.
 */
export function planDeltas(targets: DeltaImage[], held: DeltaImage[], send: ReadonlySet<Digest>, holds: ReadonlySet<Digest>): DeltaCandidate[] {
  const seen = new Set<Digest>();
  const heldBlocks = held.flatMap((h) => h.blocks).filter((b) => holds.has(b.digest));
  const sentBlocks = targets.flatMap((t) => t.blocks).filter((b) => send.has(b.digest));
  const all = [...pickBlockBases(sentBlocks, heldBlocks), ...targets.flatMap((t) => pickLayerBases(t, held, send, holds))];
  return all.filter((c) => !seen.has(c.blob.digest) && Boolean(seen.add(c.blob.digest)));
}
