/** Runs the blockport CLI as a user would: a child process, exit code and one-line stderr. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** The node flags of the CLI's `#!/usr/bin/env -S node ...` line: tests run it as the installed bin runs. */
export const NODE_FLAGS: string[] = (/^#!\/usr\/bin\/env -S node((?:\s+--[\w-]+(?:=\S+)?)*)\s*$/.exec(readFileSync(CLI, 'utf8').split('\n', 1)[0])?.[1] ?? '').trim().split(/\s+/).filter(Boolean);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function blockport(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

/** Runs the CLI and fails with its stderr unless it exits 0. */
export async function ok(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const r = await blockport(args, env);
  if (r.code !== 0) throw new Error(`blockport ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}
