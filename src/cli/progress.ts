import cliProgress from 'cli-progress';
import { humanSize } from './format.js';

/** Progress on stderr, only when it is a terminal and output is not --json. */
export interface Progress {
  update(done: number, total: number, label?: string): void;
  stop(): void;
}

const NONE: Progress = { update() {}, stop() {} };

export function progressBar(what: string, enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return NONE;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${what} [{bar}] {percentage}% {done}/{all} {label}`,
      hideCursor: true,
      clearOnComplete: true,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, label = '') {
      const payload = { done: humanSize(done), all: humanSize(total), label };
      if (!started) {
        bar.start(Math.max(total, 1), done, payload);
        started = true;
      } else {
        bar.setTotal(Math.max(total, 1));
        bar.update(done, payload);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
