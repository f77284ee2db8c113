/**
 * Errors a user can hit carry a stable `code`, the path or digest they concern, and map to an exit
 * code. Programmer errors stay plain `Error`s. The CLI prints `message` on one line.
 */
export type ErrorCode =
  | 'EUSAGE' // bad command line or reference
  | 'ENOTFOUND' // image, tag, file or blob that is not there
  | 'EDIGEST' // content whose digest or size does not match what was promised
  | 'ECORRUPT' // malformed or truncated input (tar, JSON, compressed stream)
  | 'EUNSAFE' // path traversal, symlink escape, or anything refused for safety
  | 'EMISSING' // blocks or prerequisites the receiver lacks
  | 'ELOCKED' // another process holds the store lock
  | 'ESIGNATURE' // unsigned or wrongly signed bundle
  | 'EUNSUPPORTED' // valid input that blockport does not handle
  | 'ENOSPACE' // the disk is full
  | 'ETOOL' // an external tool (zstd, docker, podman) is absent or failed
  | 'EDOWNGRADE' // a bundle older than the release of a tag the store applied before
  | 'EIO'; // any other I/O failure

const EXIT_CODES: Record<ErrorCode, number> = {
  EUSAGE: 2,
  ENOTFOUND: 3,
  EDIGEST: 4,
  ECORRUPT: 4,
  EUNSAFE: 5,
  EMISSING: 6,
  ELOCKED: 7,
  ESIGNATURE: 8,
  EUNSUPPORTED: 9,
  ENOSPACE: 10,
  ETOOL: 11,
  EDOWNGRADE: 12,
  EIO: 1,
};

export class BlockportError extends Error {
  readonly code: ErrorCode;
  /** The path, digest or reference the error concerns, when there is one. */
  readonly subject?: string;

  constructor(code: ErrorCode, message: string, options: { subject?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BlockportError';
    this.code = code;
    this.subject = options.subject;
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

/** A temp name (`DIR/.NAME.tmp-PID-RANDOM`, src/cas/atomic.ts) means nothing to a user: the file being written, `DIR/NAME`. */
function finalName(p: string): string {
  return p.replace(/(^|\/)\.([^/]+)\.tmp-\d+-[0-9a-f]{8}$/, '$1$2');
}

/** A system error's message without Node's "CODE: syscall, open 'path'" wrapping, when it has one. */
function plainMessage(e: NodeJS.ErrnoException | undefined): string {
  const m = e?.message ?? String(e);
  const raw = /^[A-Z]+: ([^,]+), \w+/.exec(m);
  return raw ? `${raw[1]}${e?.path ? ` (${e.path})` : ''}` : m;
}

/** Turns a Node.js system error into a BlockportError with a code a user can act on. */
export function fromSystemError(err: unknown, what: string): BlockportError {
  if (err instanceof BlockportError) return err;
  const e = err as NodeJS.ErrnoException & { dest?: string };
  what = finalName(what);
  const path = e?.path ? finalName(e.path) : what;
  switch (e?.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new BlockportError('ENOSPACE', `no space left on device while writing ${what}`, { subject: what, cause: err });
    case 'ENOENT':
      return new BlockportError('ENOTFOUND', `${what}: no such file or directory`, { subject: what, cause: err });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new BlockportError('EIO', `${what}: permission denied`, { subject: what, cause: err });
    case 'EISDIR':
      return new BlockportError('EUSAGE', `${path}: is a directory (a file is expected there)`, { subject: what, cause: err });
    case 'ENOTDIR':
      return new BlockportError('EUSAGE', `${path}: a part of this path is a file, not a directory`, { subject: what, cause: err });
    case 'EEXIST':
      return new BlockportError('EIO', `${e.dest ?? path}: already exists`, { subject: what, cause: err });
    case 'ENOTEMPTY':
      return new BlockportError('EIO', `${e.dest ?? path}: a folder that is not empty is in the way`, { subject: what, cause: err });
    case 'EXDEV':
      return new BlockportError('EIO', `${what}: cannot move a file across file systems (${e.path ?? ''} -> ${e.dest ?? ''})`, { subject: what, cause: err });
    default:
      return new BlockportError('EIO', `${what}: ${plainMessage(e)}`, { subject: what, cause: err });
  }
}
