import { Progress, progressBar } from './progress.js';

/** What every command handler gets: output mode and a way to show progress. */
export interface CliContext {
  json: boolean;
  progress(what: string): Progress;
  /** Prints a human line to stdout (suppressed in --json mode). */
  say(line: string): void;
}

export function makeContext(json: boolean): CliContext {
  return {
    json,
    progress: (what) => progressBar(what, !json),
    say: (line) => {
      if (!json) process.stdout.write(`${line}\n`);
    },
  };
}

export type { Progress };
