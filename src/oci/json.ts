import { Readable } from 'node:stream';
import { sha256 } from '../digest/digest.js';
import { BlockportError } from '../errors.js';
import type { ImageWriter } from './image.js';
import type { Descriptor } from './types.js';

/** Manifests and configs are small; anything larger than this is refused as a DoS guard. */
export const MAX_JSON_BLOB = 16 << 20;

/** Reads a whole small stream into memory, refusing more than `limit` bytes. */
export async function readSmall(stream: Readable, what: string, limit = MAX_JSON_BLOB): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    n += chunk.length;
    if (n > limit) {
      stream.destroy();
      throw new BlockportError('ECORRUPT', `${what}: larger than ${limit} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

export function parseJson<T>(bytes: Buffer | string, what: string): T {
  try {
    return JSON.parse(bytes.toString()) as T;
  } catch (err) {
    throw new BlockportError('ECORRUPT', `${what}: invalid JSON (${(err as Error).message})`, { cause: err });
  }
}

/** Canonical-enough JSON for blobs blockport writes: stable key order as given, no spaces. */
export function jsonBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** Writes a small JSON blob and returns its descriptor. */
export async function putJson(dst: ImageWriter, mediaType: string, value: unknown, extra: Partial<Descriptor> = {}): Promise<Descriptor> {
  const bytes = jsonBytes(value);
  const digest = sha256(bytes);
  await dst.putBlob(Readable.from([bytes]), { digest, size: bytes.length });
  return { mediaType, digest, size: bytes.length, ...extra };
}
