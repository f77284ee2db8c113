import { BlockportError } from '../errors.js';
import type { ImageReader, ImageWriter, OpenOptions } from './image.js';
import type { Compression } from './media-types.js';
import { writeImageTo, type StandardImage, type WriteImageOptions, type WrittenImage } from './standard-image.js';

/** A parsed reference: which transport reads it, and that transport's own fields. */
export interface ImageRef {
  readonly transport: string;
}

/**
 * A place images live (a layout folder, an archive file, the store, a registry), named by a
 * `NAME:REST` reference as skopeo names them. Adding a place is one file implementing this and one
 * `registerTransport` call (src/transports.ts).
 */
export interface Transport<R extends ImageRef = ImageRef> {
  /** The prefix before the first colon (`oci`, `docker`); `store` reads the bare NAME:TAG. */
  readonly name: string;
  /** For help: the reference's shape and what it names. */
  readonly usage: string;
  readonly description: string;
  /** Layer compression for block-form layers written here when the user names none. */
  readonly layerCompression: Compression;
  /** Parses what follows `NAME:` (all of `text` for the store). */
  parse(rest: string, text: string): R;
  format(ref: R): string;
  open(ref: R, label: string, opts?: OpenOptions): Promise<ImageReader>;
  /** A writer for any image, block form included; absent where only standard images fit. */
  openWriter?(ref: R, label: string): Promise<ImageWriter>;
  /** Writes a standard image where blob-by-blob writing does not fit (docker-archive). */
  writeStandard?(ref: R, img: StandardImage, opts: WriteImageOptions): Promise<WrittenImage>;
  /** The NAME:TAG the reference itself carries (a store name, a docker-archive's NAME:TAG). */
  nameOf?(ref: R): string | undefined;
  /** A NAME:TAG guessed from the place (a folder's base name and the tag), for bundle targets. */
  guessName?(ref: R): string | undefined;
}

const transports = new Map<string, Transport>();
/** The transport that reads references without a prefix (NAME:TAG). */
const STORE = 'store';

/** Makes a transport known by its name; the last one registered under a name wins. */
export function registerTransport<R extends ImageRef>(t: Transport<R>): void {
  transports.set(t.name, t as unknown as Transport);
}

/** Every registered transport, the store last: for help texts. */
export function listTransports(): Transport[] {
  return [...transports.values()].sort((a, b) => Number(a.name === STORE) - Number(b.name === STORE) || (a.name < b.name ? -1 : 1));
}

/** The transport a parsed reference belongs to. */
export function transportOf(ref: ImageRef): Transport {
  const t = transports.get(ref.transport);
  if (!t) throw new BlockportError('EUNSUPPORTED', `transport ${ref.transport}: is not known`);
  return t;
}

/** Levenshtein distance, for "did you mean" hints on mistyped transports. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

/** The transport `prefix` is probably a typo of (at most two edits away). */
function nearestTransport(prefix: string): string | undefined {
  const near = [...transports.keys()].filter((n) => n !== STORE).map((n) => [n, distance(prefix, n)] as const).sort((a, b) => a[1] - b[1])[0];
  return near && near[1] <= 2 ? near[0] : undefined;
}

function knownTransports(): string {
  return `${listTransports().filter((x) => x.name !== STORE).map((x) => `${x.name}:`).join(', ')} or a store NAME:TAG`;
}

/** Parses a skopeo-style reference: `TRANSPORT:REST`, or a store `NAME:TAG`. */
export function parseRef(s: string): ImageRef {
  const i = s.indexOf(':');
  const prefix = i === -1 ? '' : s.slice(0, i);
  const rest = s.slice(i + 1);
  const t = transports.get(prefix);
  if (t && prefix !== STORE) return t.parse(rest, s);
  if (prefix === 'containers-storage' || prefix === 'dir') {
    throw new BlockportError('EUNSUPPORTED', `${s}: transport ${prefix}: is not supported yet (use ${knownTransports()})`);
  }
  // "docker-arhive:x.tar" is a mistyped transport, not a store image named docker-arhive
  const near = prefix ? nearestTransport(prefix) : undefined;
  if (near && (rest.includes('/') || /\.(tar|oci|tgz)$/.test(rest))) {
    throw new BlockportError('EUSAGE', `${s}: unknown transport ${JSON.stringify(prefix)} (did you mean ${near}:?)`);
  }
  // a bare file name is not a store image either
  if (i === -1 && (/\.(tar|tgz|oci)$/.test(s) || s.includes('/') || s.startsWith('.'))) {
    throw new BlockportError('EUSAGE', `${s}: no transport named (e.g. docker-archive:${s}, oci-archive:${s}, oci:DIR; known: ${knownTransports()})`);
  }
  const store = transports.get(STORE);
  if (!store) throw new BlockportError('EUNSUPPORTED', `${s}: no transport reads it (known: ${knownTransports()})`);
  return store.parse(s, s);
}

export function formatRef(ref: ImageRef): string {
  return transportOf(ref).format(ref);
}

function parsed(ref: string | ImageRef): { r: ImageRef; label: string } {
  return typeof ref === 'string' ? { r: parseRef(ref), label: ref } : { r: ref, label: formatRef(ref) };
}

/** Opens any reference for reading. `label` names it in messages (default: the reference). */
export async function openImage(ref: string | ImageRef, label?: string, opts?: OpenOptions): Promise<ImageReader> {
  const { r, label: text } = parsed(ref);
  return transportOf(r).open(r, label ?? text, opts);
}

/** Opens a place for writing any image, block form included. */
export async function openWriter(ref: string | ImageRef, label?: string): Promise<ImageWriter> {
  const { r, label: text } = parsed(ref);
  const t = transportOf(r);
  if (!t.openWriter) {
    throw new BlockportError('EUNSUPPORTED', `${label ?? text}: a block-form image cannot be written as a ${t.name} (it has no place for blocks); use ${listTransports().filter((x) => x.openWriter).map((x) => (x.name !== STORE ? `${x.name}:` : 'the store')).join(', ')}`);
  }
  return t.openWriter(r, label ?? text);
}

/**
 * Writes a standard image to any reference: the transport's own writer where it has one (a
 * docker-archive), else blob by blob through its ImageWriter (see writeImageTo). A failure is
 * handed to `img.explain`, which names a corrupt block or layer blob when one is the cause.
 */
export async function writeImage(dst: string | ImageRef, img: StandardImage, opts: WriteImageOptions = {}): Promise<WrittenImage> {
  const { r, label } = parsed(dst);
  const t = transportOf(r);
  if (t.writeStandard) {
    try {
      return await t.writeStandard(r, img, opts);
    } catch (err) {
      return img.explain(err);
    }
  }
  if (!t.openWriter) throw new BlockportError('EUNSUPPORTED', `${label}: images cannot be written there`);
  return writeImageTo(await t.openWriter(r, label), img, opts);
}
