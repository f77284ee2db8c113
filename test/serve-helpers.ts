/**
 * A `blockport serve` child process on 127.0.0.1 with a random port, as a user runs it: the URL
 * read from what it prints at start, its request log kept, stopped with a signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from './cli.js';

export interface Served {
  url: string;
  /** host:port, for image references. */
  addr: string;
  /** Request log lines so far (stderr). */
  log: string[];
  child: ChildProcess;
  /** Sends `signal` and resolves with the exit code and stdout once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts `blockport serve --listen 127.0.0.1:0 ...args` over the store `home`; fails after 20 s without a URL. */
export function startServe(home: string, args: string[] = []): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', ...args], { env: { ...process.env, BLOCKPORT_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
  const log: string[] = [];
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null }>((resolve) => child.on('close', (code) => resolve({ code })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 20_000);
    const seen = () => {
      const m = /blockport serve: (http:\/\/127\.0\.0\.1:(\d+))/.exec(out + err);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        url: m[1],
        addr: `127.0.0.1:${m[2]}`,
        log,
        child,
        async stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (child.exitCode === null) child.kill(signal);
          const { code } = await exited;
          return { code, stdout: out, stderr: err };
        },
      });
    };
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      seen();
    });
    let partial = '';
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) if (/^\d{4}-\d\d-\d\dT/.test(line)) log.push(line);
      seen();
    });
    void exited.then(({ code }) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

/** The log lines of blob GETs answered 200 or 206, as "digest" strings, from `from` on. */
export function blobGets(log: string[], from = 0): string[] {
  return log
    .slice(from)
    .map((l) => / GET \/v2\/[^ ]+\/blobs\/(sha256:[0-9a-f]{64}) 20[06] /.exec(l)?.[1])
    .filter((d): d is string => d !== undefined);
}

/** Waits until the log has had no new line for 200 ms (the server logs a request when its response closes). */
export async function settled(log: string[]): Promise<void> {
  let n = -1;
  while (n !== log.length) {
    n = log.length;
    await new Promise((r) => setTimeout(r, 200));
  }
}
