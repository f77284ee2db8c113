import { BlockportError } from '../errors.js';

/**
 * How to re-create a compressed layer blob, byte for byte, from its uncompressed tar
 * (docs/spec.md section 17.2). gzip: the recorded header bytes, then the deflate stream of
 * `engine` at `level`, then the CRC-32 and length trailer. zstd: the `zstd` command's output.
 */
export type Recipe = GzipRecipe | ZstdRecipe;

/** `gnu-gzip`: the `gzip` command; `zlib`: vanilla zlib (pako 2.1.0, a byte-exact port); `node-zlib`: Node's own zlib. */
export type GzipEngine = 'gnu-gzip' | 'zlib' | 'node-zlib';

export interface GzipRecipe {
  format: 'gzip';
  engine: GzipEngine;
  level: number;
  /** The gzip member header, as the blob has it (mtime, OS byte, name...). */
  header: Buffer;
}

export interface ZstdRecipe {
  format: 'zstd';
  engine: 'zstd-cli';
  level: number;
  /** Whether the frame records the content size (`--stream-size`). */
  contentSize: boolean;
  /** Whether the frame ends with a checksum (`--no-check` when not). */
  checksum: boolean;
  /** `--long=N` window log, 0 for none. */
  long: number;
  /** `--single-thread`: zstd's one-thread mode writes other bytes than its worker mode (-T1, -T0...). */
  singleThread: boolean;
}

const GZIP_ENGINES: readonly GzipEngine[] = ['gnu-gzip', 'zlib', 'node-zlib'];
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const FLAG = /^[01]$/;
const NUMBER = /^(0|[1-9]\d{0,2})$/;

/** The recipe's annotation value: `FORMAT/ENGINE key=value...`, keys in a fixed order. */
export function formatRecipe(r: Recipe): string {
  if (r.format === 'gzip') return `gzip/${r.engine} level=${r.level} header=${r.header.toString('base64')}`;
  return `zstd/zstd-cli level=${r.level} content-size=${+r.contentSize} checksum=${+r.checksum} long=${r.long} single-thread=${+r.singleThread}`;
}

/** A short human name: `GNU gzip -6`, `zlib level 9`, `zstd -3`. */
export function describeRecipe(r: Recipe): string {
  if (r.format === 'zstd') return `zstd -${r.level}${r.long ? ` --long=${r.long}` : ''}${r.singleThread ? ' --single-thread' : ''}`;
  return r.engine === 'gnu-gzip' ? `GNU gzip -${r.level}` : r.engine === 'zlib' ? `zlib level ${r.level}` : `Node.js zlib level ${r.level}`;
}

/** Parses a recipe annotation; anything but the exact form `formatRecipe` writes is ECORRUPT. */
export function parseRecipe(text: string, where: string): Recipe {
  const bad = (why: string) => new BlockportError('ECORRUPT', `${where}: bad compression recipe ${JSON.stringify(text.slice(0, 80))}: ${why}`);
  const [kind, ...pairs] = text.split(' ');
  const fields = new Map<string, string>();
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0 || fields.has(p.slice(0, eq))) throw bad(`field ${JSON.stringify(p.slice(0, 40))}`);
    fields.set(p.slice(0, eq), p.slice(eq + 1));
  }
  const num = (k: string, max: number) => {
    const v = fields.get(k) ?? '';
    if (!NUMBER.test(v) || Number(v) > max) throw bad(`${k}`);
    return Number(v);
  };
  const flag = (k: string) => {
    const v = fields.get(k) ?? '';
    if (!FLAG.test(v)) throw bad(k);
    return v === '1';
  };
  let r: Recipe;
  if (kind.startsWith('gzip/')) {
    const engine = kind.slice(5) as GzipEngine;
    if (!GZIP_ENGINES.includes(engine)) throw bad(`unknown engine ${engine}`);
    const h = fields.get('header') ?? '';
    if (!B64.test(h) || h.length === 0 || h.length > 4096) throw bad('header');
    r = { format: 'gzip', engine, level: num('level', 9), header: Buffer.from(h, 'base64') };
    if (r.level < 1) throw bad('level');
  } else if (kind === 'zstd/zstd-cli') {
    r = { format: 'zstd', engine: 'zstd-cli', level: num('level', 22), contentSize: flag('content-size'), checksum: flag('checksum'), long: num('long', 31), singleThread: flag('single-thread') };
    if (r.level < 1 || (r.long !== 0 && r.long < 10)) throw bad('level or long');
  } else {
    throw bad(`unknown format ${JSON.stringify(kind)}`);
  }
  if (formatRecipe(r) !== text) throw bad('not in canonical form');
  return r;
}
