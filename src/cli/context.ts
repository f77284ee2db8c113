import type { Command } from 'commander';
import { type Progress, progressBar } from './progress.js';

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

/**
 * Wraps a command handler for commander: handlers return data; this prints it as JSON (--json)
 * or through `print` as text. Errors propagate to main, which maps them to exit codes.
 */
export function action<A extends unknown[], R>(run: (...a: A) => Promise<R>, print: (r: R, ctx: CliContext) => void | Promise<void>) {
  return async (...args: A) => {
    const cmd = args[args.length - 1] as Command;
    const json = Boolean(cmd.opts().json);
    const ctx = makeContext(json);
    const result = await run(...args);
    if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else await print(result, ctx);
  };
}
