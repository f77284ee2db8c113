import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import { compressor } from '../oci/compression.js';
import type { BundleBlob } from './format.js';
import { END_OP, OP_COPY, RECIPE_MAGIC, copyOp, decodeRecipe, literalOp, recipeDecoder, varint, type RecipeBase } from './recipe.js';

let dir: string;
let bases: RecipeBase[];
const A = randomBytes(300_000);
const B = randomBytes(1000);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blockport-recipe-'));
  bases = [];
  for (const [i, b] of [A, B].entries()) {
    const path = join(dir, `base${i}`);
    await writeFile(path, b);
    bases.push({ digest: sha256(b), size: b.length, path });
  }
});
after(() => rm(dir, { recursive: true, force: true }));

/** A recipe stream: the magic line, then the given ops (END is not added). */
function stream(...ops: Buffer[]): Buffer {
  return Buffer.concat([RECIPE_MAGIC, ...ops]);
}

async function decode(bytes: Buffer, size: number, chunk = 7): Promise<Buffer> {
  const pieces = Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk));
  const out: Buffer[] = [];
  for await (const b of decodeRecipe(Readable.from(pieces), bases, size, 'test')) out.push(b);
  return Buffer.concat(out);
}

const corrupt = (re: RegExp) => (err: unknown) => err instanceof BlockportError && err.code === 'ECORRUPT' && re.test(err.message);

test('varints: LEB128, shortest form, up to 2^53 - 1', () => {
  assert.deepEqual(varint(0), Buffer.of(0));
  assert.deepEqual(varint(127), Buffer.of(0x7f));
  assert.deepEqual(varint(128), Buffer.of(0x80, 0x01));
  assert.deepEqual(varint(300), Buffer.of(0xac, 0x02));
  assert.equal(varint(Number.MAX_SAFE_INTEGER).length, 8);
  assert.throws(() => varint(-1));
});

test('literals and copies (across bases, more than one read piece) rebuild the exact bytes', async () => {
  const lit = randomBytes(5000);
  const bytes = stream(literalOp(lit.length), lit, copyOp(0, 1000, 290_000), copyOp(1, 0, 1000), literalOp(3), Buffer.from('end'), copyOp(0, 0, 1), END_OP);
  const want = Buffer.concat([lit, A.subarray(1000, 291_000), B, Buffer.from('end'), A.subarray(0, 1)]);
  assert.deepEqual(await decode(bytes, want.length), want);
  assert.deepEqual(await decode(bytes, want.length, 1 << 16), want);
});

test('through zstd, as a bundle member decodes: recipeDecoder', async () => {
  const want = Buffer.concat([Buffer.from('head'), A.subarray(5, 200_005), B.subarray(10, 20)]);
  const ops = stream(literalOp(4), Buffer.from('head'), copyOp(0, 5, 200_000), copyOp(1, 10, 10), END_OP);
  const z = Buffer.concat(await Readable.from([ops]).pipe(compressor('zstd', 'test')!).toArray());
  const blob: BundleBlob = { digest: sha256(want), size: want.length, mediaType: 'x', encoding: 'recipe', storedSize: z.length, bases: bases.map(({ digest, size }) => ({ digest, size })) };
  const paths = new Map(bases.map((b) => [b.digest, b.path]));
  const got = Buffer.concat(await Readable.from([z]).pipe(recipeDecoder(blob, 'test', (d) => paths.get(d)!)).toArray());
  assert.deepEqual(got, want);
  assert.throws(() => recipeDecoder(blob, 'test'), (e: unknown) => e instanceof BlockportError && e.code === 'EUNSUPPORTED');
  // bytes that are not zstd fail as corrupt, one line
  await assert.rejects(Readable.from([ops]).pipe(recipeDecoder(blob, 'test', (d) => paths.get(d)!)).toArray(), corrupt(/zstd failed/));
});

test('refused: a copy outside its base, a base index out of range, an unknown op', async () => {
  await assert.rejects(decode(stream(copyOp(1, 900, 101), END_OP), 101), corrupt(/copies bytes 900-1001 of base .* which has 1000/));
  await assert.rejects(decode(stream(copyOp(0, Number.MAX_SAFE_INTEGER - 5, 10), END_OP), 10), corrupt(/copies bytes/));
  await assert.rejects(decode(stream(copyOp(2, 0, 10), END_OP), 10), corrupt(/copies from base 2; the blob names 2/));
  await assert.rejects(decode(stream(Buffer.of(7), END_OP), 0), corrupt(/unknown op 7/));
});

test('refused: truncated streams, missing END, trailing bytes, bad magic', async () => {
  const lit = stream(literalOp(10), Buffer.from('0123456789'), END_OP);
  assert.deepEqual(await decode(lit, 10), Buffer.from('0123456789'));
  await assert.rejects(decode(lit.subarray(0, lit.length - 1), 10), corrupt(/no END op/));
  await assert.rejects(decode(lit.subarray(0, lit.length - 4), 10), corrupt(/truncated/));
  await assert.rejects(decode(stream(Buffer.of(OP_COPY, 0)), 10), corrupt(/truncated inside an op/));
  await assert.rejects(decode(Buffer.concat([lit, Buffer.of(0)]), 10), corrupt(/after its END op/));
  await assert.rejects(decode(Buffer.from('not a recipe at all, no\n'), 0), corrupt(/bad magic/));
  await assert.rejects(decode(Buffer.alloc(0), 0), corrupt(/bad magic/));
});

test('refused: output longer or shorter than the blob, empty ops, odd varints', async () => {
  const lit = stream(literalOp(10), Buffer.from('0123456789'), END_OP);
  await assert.rejects(decode(lit, 9), corrupt(/more than the blob's 9 bytes/));
  await assert.rejects(decode(lit, 11), corrupt(/gives 10 bytes; the blob has 11/));
  await assert.rejects(decode(stream(literalOp(0), END_OP), 0), corrupt(/empty op/));
  await assert.rejects(decode(stream(Buffer.of(1, 0x8a, 0x00), END_OP), 10), corrupt(/shortest form/));
  await assert.rejects(decode(stream(Buffer.of(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), 10), corrupt(/longer than 8 bytes/));
  await assert.rejects(decode(stream(Buffer.of(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)), 10), corrupt(/too large/));
});
