import { spawn } from 'node:child_process';
import { materializeToStream, type MaterializeOptions, type MaterializeResult } from '../blocks/materialize.js';
import { BlockportError } from '../errors.js';
import type { ImageReader } from '../oci/image.js';

export type LoadTool = 'docker' | 'podman';

/** Runs `cmd args` to its end; resolves with its exit code (-1 when it cannot start) and output. */
function probe(cmd: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // our own timer: spawn's `timeout` keeps the process alive when the command does not exist
    const timer = setTimeout(() => child.kill(), timeoutMs);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', () => {
      clearTimeout(timer);
      resolve({ code: -1, out: '' });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

const lastLine = (s: string) => s.trim().split('\n').pop() ?? '';

/** Checks a tool can load images: docker needs a daemon that answers; podman needs only itself. */
async function usable(tool: LoadTool): Promise<string | undefined> {
  const r = tool === 'docker' ? await probe('docker', ['version', '--format', '{{.Server.Version}}']) : await probe('podman', ['--version']);
  if (r.code === 0) return undefined;
  if (r.code === -1) return `${tool} is not installed`;
  return tool === 'docker' ? `no docker daemon answers (${lastLine(r.out)})` : `podman does not run (${lastLine(r.out)})`;
}

/** The tool to load with: the one asked for, else docker when a daemon answers, else podman. */
export async function pickTool(wanted?: string): Promise<LoadTool> {
  if (wanted !== undefined && wanted !== 'docker' && wanted !== 'podman') throw new BlockportError('EUSAGE', `unknown tool ${JSON.stringify(wanted)} (docker or podman)`);
  const candidates: LoadTool[] = wanted ? [wanted as LoadTool] : ['docker', 'podman'];
  const why: string[] = [];
  for (const t of candidates) {
    const problem = await usable(t);
    if (!problem) return t;
    why.push(problem);
  }
  throw new BlockportError('ETOOL', `cannot load images: ${why.join('; ')} (materialize to docker-archive:FILE instead)`);
}

/** Names the tool printed: "Loaded image: app:2", "Loaded image(s): ...", "Loaded image ID: sha256:...". */
function loadedNames(out: string): string[] {
  return [...out.matchAll(/^Loaded image(?:\(s\)| ID)?: *(.+)$/gm)].flatMap((m) => m[1].split(',').map((s) => s.trim()));
}

/**
 * Materializes `src` as a docker-archive straight into `TOOL load` (nothing written to disk).
 * A failure on either side kills the other and is reported on one line.
 */
export async function loadInto(tool: LoadTool, src: ImageReader, repoTags: string[], opts: MaterializeOptions = {}): Promise<MaterializeResult & { tool: LoadTool; loaded: string[] }> {
  const child = spawn(tool, ['load'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number>((resolve) => {
    child.on('error', () => resolve(-1));
    child.on('close', (code) => resolve(code ?? -1));
  });
  let result: MaterializeResult;
  try {
    result = await materializeToStream(src, child.stdin, repoTags, opts);
  } catch (err) {
    const code = child.exitCode ?? (child.kill(), await exited);
    if (err instanceof BlockportError && err.code !== 'EIO') throw err;
    throw new BlockportError('ETOOL', `${tool} load failed: ${lastLine(out) || (err as Error).message} (exit ${code})`, { cause: err });
  }
  const code = await exited;
  if (code !== 0) throw new BlockportError('ETOOL', `${tool} load failed (exit ${code}): ${lastLine(out)}`);
  return { ...result, tool, loaded: loadedNames(out) };
}
