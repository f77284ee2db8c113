// Runs the outside tools the benchmark inputs are made with (apt-get, dpkg-deb, npm, GNU tar,
// umoci, skopeo, javac, jar). Everything is bounded in time and in captured output.
import { spawn } from 'node:child_process';

/** Options for {@link run}. */
export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kills the command after this long; default 10 minutes. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const MAX_CAPTURE = 64 << 20;

/** Runs `cmd args` without a shell; resolves to its stdout, rejects with the tail of stderr. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 10 * 60_000,
      signal: opts.signal,
    });
    const out: Buffer[] = [];
    let outLen = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      // Why: a runaway command must not grow our memory without bound.
      if (outLen < MAX_CAPTURE) out.push(b);
      outLen += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      err = (err + b.toString('utf8')).slice(-8192);
    });
    child.on('error', (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.on('close', (code, sig) => {
      if (code === 0) return resolve(Buffer.concat(out).toString('utf8'));
      const why = sig ? `killed by ${sig}` : `exit ${code}`;
      reject(new Error(`${cmd} ${short(args)} failed (${why}): ${err.trim().split('\n').slice(-6).join(' | ')}`));
    });
  });
}

/** True when `cmd` can be started (probed with `cmd --version`). */
export async function hasTool(cmd: string, versionArgs = ['--version']): Promise<boolean> {
  try {
    await run(cmd, versionArgs, { timeoutMs: 20_000 });
    return true;
  } catch {
    return false;
  }
}

/** Runs `work` over `items` with at most `limit` running at once, keeping order of results. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function short(args: string[]): string {
  const s = args.join(' ');
  return s.length > 160 ? `${s.slice(0, 160)}...` : s;
}
