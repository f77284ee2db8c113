/**
 * How often, and how fast, blockify finds the compressor of a layer blob (docs/spec.md 17.5):
 * one uncompressed layer tar compressed by each tool, then the search and one replay timed.
 *
 *   node dist/bench/measure-recompress.js [LAYER.tar]
 *
 * Without an argument the layer is GNU tar of /usr/share/perl and /usr/lib/x86_64-linux-gnu/perl
 * (about 44 MB of text and shared objects). umoci and skopeo need to be installed.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream';
import { gzipSync } from 'node:zlib';
import pako from 'pako';
import { findRecipe } from '../src/fidelity/find-recipe.js';
import { describeRecipe } from '../src/fidelity/recipe.js';
import { recompressor } from '../src/fidelity/recompressor.js';
import { run } from './exec.js';

interface Row {
  made: string;
  found: string;
  searchMs: number;
  tried: number;
  replayMBps?: number;
}

async function shell(cmd: string): Promise<void> {
  await run('sh', ['-c', cmd]);
}

/** The biggest blob of an OCI layout: its one layer. */
async function biggestBlob(layout: string): Promise<string> {
  const dir = join(layout, 'blobs', 'sha256');
  let best = '';
  let size = -1;
  for (const f of await readdir(dir)) {
    const s = (await stat(join(dir, f))).size;
    if (s > size) [best, size] = [join(dir, f), s];
  }
  return best;
}

async function makeBlobs(tar: string, dir: string): Promise<[string, string][]> {
  const data = await readFile(tar);
  const out: [string, string][] = [];
  const file = (name: string) => join(dir, name);
  for (const l of [1, 6, 9]) {
    await shell(`gzip -${l} -n -c '${tar}' > '${file(`gnu${l}.gz`)}'`);
    out.push([`GNU gzip -${l} -n`, file(`gnu${l}.gz`)]);
  }
  await shell(`gzip -6 -c '${tar}' > '${file('gnu6-named.gz')}'`);
  out.push(['GNU gzip -6 (name, mtime)', file('gnu6-named.gz')]);
  for (const l of [1, 6, 9] as const) {
    await writeFile(file(`zlib${l}.gz`), pako.gzip(data, { level: l }));
    out.push([`zlib level ${l} (Python, Java, pako)`, file(`zlib${l}.gz`)]);
  }
  await writeFile(file('node6.gz'), gzipSync(data, { level: 6 }));
  out.push(["Node.js zlib -6 (blockport's own)", file('node6.gz')]);
  for (const args of ['-3', '-19', '-3 --single-thread']) {
    await shell(`zstd -q -c ${args} < '${tar}' > '${file(`z${args.replace(/ /g, '')}.zst`)}'`);
    out.push([`zstd ${args}`, file(`z${args.replace(/ /g, '')}.zst`)]);
  }
  const layout = join(dir, 'umoci');
  await shell(`umoci init --layout '${layout}' && umoci new --image '${layout}:v1' && umoci raw add-layer --image '${layout}:v1' '${tar}'`);
  out.push(['umoci (Go pgzip)', await biggestBlob(layout)]);
  // an uncompressed OCI layout that skopeo then compresses on its way to another
  const plain = join(dir, 'plain');
  await shell(`mkdir -p '${plain}/blobs/sha256' && cp '${tar}' '${plain}/blobs/sha256/${(await sha(tar)).slice(7)}'`);
  await writePlainLayout(plain, tar, data.length);
  const sk = join(dir, 'skopeo');
  await shell(`skopeo copy --quiet --insecure-policy --dest-compress --dest-compress-format gzip 'oci:${plain}:v1' 'oci:${sk}:v1'`);
  out.push(['skopeo copy --dest-compress (Go gzip)', await biggestBlob(sk)]);
  return out;
}

async function sha(file: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return `sha256:${createHash('sha256').update(await readFile(file)).digest('hex')}`;
}

async function writePlainLayout(dir: string, tar: string, size: number): Promise<void> {
  const { createHash } = await import('node:crypto');
  const put = async (bytes: Buffer) => {
    const d = createHash('sha256').update(bytes).digest('hex');
    await writeFile(join(dir, 'blobs', 'sha256', d), bytes);
    return { digest: `sha256:${d}`, size: bytes.length };
  };
  const diffId = await sha(tar);
  const config = await put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } })));
  const manifest = await put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: diffId, size }] })));
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
}

async function measure(made: string, blob: string, tar: string, size: number): Promise<Row> {
  const src = {
    openCompressed: async () => createReadStream(blob, { highWaterMark: 1 << 18 }),
    openUncompressed: async () => createReadStream(tar, { highWaterMark: 1 << 18 }),
    uncompressedSize: size,
    what: made,
  };
  const t0 = performance.now();
  const r = await findRecipe(src);
  const row: Row = { made, found: r.recipe ? describeRecipe(r.recipe) : `no: ${r.reason}`, searchMs: performance.now() - t0, tried: r.attempts.length };
  if (r.recipe) {
    const t1 = performance.now();
    const out = pipeline(createReadStream(tar, { highWaterMark: 1 << 18 }), recompressor(r.recipe, size, made), () => {});
    for await (const _ of out);
    row.replayMBps = size / 1e6 / ((performance.now() - t1) / 1000);
  }
  return row;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'blockport-recompress-'));
  try {
    let tar = process.argv[2];
    if (!tar) {
      tar = join(dir, 'layer.tar');
      await shell(`tar -cf '${tar}' -C /usr share/perl lib/x86_64-linux-gnu/perl 2>/dev/null || true`);
    }
    const size = (await stat(tar)).size;
    console.log(`layer: ${tar}, ${(size / 1e6).toFixed(1)} MB uncompressed`);
    console.log('| made by | re-created by | search | candidates tried | replay (MB/s of tar) |');
    console.log('|---|---|---|---|---|');
    for (const [made, blob] of await makeBlobs(tar, dir)) {
      const r = await measure(made, blob, tar, size);
      console.log(`| ${r.made} | ${r.found} | ${(r.searchMs / 1000).toFixed(1)} s | ${r.tried} | ${r.replayMBps?.toFixed(0) ?? '-'} |`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
