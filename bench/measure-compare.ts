// What a receiver does today to get a docker-archive of an image, timed the same way as blockport:
// `skopeo copy` from the OCI layout, re-tarring the layers with GNU tar, and `cp` of the result.
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { bestOf, showCommand, warm, type Command, type Timing } from './measure-exec.js';
import { layoutImage } from './measure-bytes.js';

/** One timed run of a tool blockport is compared with. */
export interface ToolRun extends Timing {
  what: string;
  command: string;
  runs: number[];
}

/** Best of `repeat` runs of `c`, calling `reset` before each (outputs a tool will not overwrite). */
async function bestFresh(what: string, c: Command, repeat: number, reset: () => Promise<void>, shown = showCommand(c)): Promise<ToolRun> {
  const t = await bestOf(repeat, c, reset);
  return { what, command: shown, seconds: t.seconds, peakRssKiB: t.peakRssKiB, runs: t.runs };
}

/** The blob files of an image in an OCI layout (manifest order). */
async function layerBlobs(layout: string, tag: string): Promise<string[]> {
  return (await layoutImage(layout, tag)).layers.map((l) => join(layout, 'blobs', ...l.digest.split(':')));
}

/** `skopeo copy oci:LAYOUT:TAG docker-archive:OUT:NAME`, after reading the blobs once. */
export async function skopeoCopy(layout: string, tag: string, out: string, name: string, repeat = 1): Promise<ToolRun> {
  await warm(await layerBlobs(layout, tag));
  const c: Command = { cmd: 'skopeo', args: ['copy', '--quiet', '--insecure-policy', `oci:${layout}:${tag}`, `docker-archive:${out}:${name}`] };
  // Why reset: skopeo refuses to write a docker-archive over an existing file.
  return bestFresh('skopeo copy oci: -> docker-archive:', c, repeat, () => fsp.rm(out, { force: true }));
}

/**
 * The users' workaround without blockport: extract every layer of the image with GNU tar into one
 * folder, then pack the folder again and gzip it. The folder is removed afterwards (not timed).
 */
export async function gnuTarRepack(layout: string, tag: string, work: string): Promise<ToolRun> {
  const blobs = await layerBlobs(layout, tag);
  await warm(blobs);
  const root = join(work, 'retar-root');
  const out = join(work, 'retar.tar.gz');
  const script = (layers: string[], dir: string, tgz: string) => [
    'set -eo pipefail',
    `mkdir -p ${dir}`,
    ...layers.map((b) => `tar -xzf ${b} -C ${dir} --numeric-owner`),
    `tar -cf - -C ${dir} --numeric-owner . | gzip -6 > ${tgz}`,
  ].join('; ');
  // Shown with one extract per layer written out once: the blob names add nothing.
  const shown = `bash -c '${script(['LAYER.tar.gz'], 'ROOT', 'OUT.tar.gz').replace('; tar -c', ' (for each of the ' + blobs.length + ' layers, in order); tar -c')}'`;
  const reset = async () => {
    await fsp.rm(root, { recursive: true, force: true });
    await fsp.rm(out, { force: true });
  };
  try {
    return await bestFresh('GNU tar extract + tar -c | gzip -6', { cmd: 'bash', args: ['-c', script(blobs, root, out)] }, 1, reset, shown);
  } finally {
    await reset();
  }
}

/** `cp FILE COPY && sync COPY`: the copy on the disk, as durable as blockport's fsynced outputs. */
export function cpSyncCommand(file: string, copy: string): Command {
  return { cmd: 'bash', args: ['-c', `cp ${file} ${copy} && sync ${copy}`] };
}

/** `cp FILE COPY`, best of `repeat`; the copy is removed before each run and afterwards. */
export async function plainCp(file: string, work: string, repeat = 3): Promise<{ cp: ToolRun; bytes: number }> {
  await warm([file]);
  const copy = join(work, 'cp-copy.tar');
  const reset = () => fsp.rm(copy, { force: true });
  const cp = await bestFresh('cp', { cmd: 'cp', args: [file, copy] }, repeat, reset);
  await reset();
  return { cp, bytes: (await fsp.stat(file)).size };
}
