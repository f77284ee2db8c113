import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../cas/atomic.js';
import { isDigest, type Digest } from '../digest/digest.js';
import { BlockportError, fromSystemError } from '../errors.js';
import type { BundleManifest } from './format.js';

/** What the store applied last for one tag: the release number, the image and the bundle. */
export interface AppliedRelease {
  release: number;
  digest: Digest;
  bundle: Digest;
  /** When it was applied (RFC 3339). */
  applied: string;
}

/** A target whose release is older than the one applied before. */
export interface Downgrade {
  name: string;
  /** The bundle's release; undefined for a bundle written before releases existed. */
  release?: number;
  previous: AppliedRelease;
}

/**
 * The store's record of the releases it applied, per tag (`releases.json`, docs/spec.md 14.5):
 * like TUF's rollback protection, an apply refuses a bundle whose release of a tag is older than
 * the one recorded. The record survives `rmi`: untagging does not make an old release new again.
 * Written only under the store lock.
 */
export class Releases {
  readonly file: string;

  constructor(root: string) {
    this.file = join(root, 'releases.json');
  }

  async read(): Promise<Record<string, AppliedRelease>> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw fromSystemError(err, this.file);
    }
    let parsed: { tags?: Record<string, AppliedRelease> };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new BlockportError('ECORRUPT', `${this.file}: not JSON (the record of applied releases; restore it, or delete it to forget every release)`, { subject: this.file });
    }
    const out: Record<string, AppliedRelease> = {};
    for (const [name, r] of Object.entries(parsed.tags ?? {})) {
      if (r && Number.isSafeInteger(r.release) && isDigest(r.digest)) out[name] = r;
    }
    return out;
  }

  /** Records the releases of a bundle's targets (those that carry one) as applied. */
  async record(m: BundleManifest, bundle: Digest, now = new Date()): Promise<void> {
    const tags = await this.read();
    let changed = false;
    for (const t of m.targets) {
      if (t.release === undefined) continue;
      const prev = tags[t.name];
      if (prev && prev.release === t.release && prev.digest === t.descriptor.digest) continue;
      tags[t.name] = { release: t.release, digest: t.descriptor.digest, bundle, applied: now.toISOString() };
      changed = true;
    }
    if (changed) await writeFileAtomic(this.file, `${JSON.stringify({ version: 1, tags }, null, 2)}\n`);
  }
}

/** The targets of `m` older than what was applied for their tag (a bundle without release counts as oldest). */
export function downgrades(m: BundleManifest, applied: Record<string, AppliedRelease>): Downgrade[] {
  const out: Downgrade[] = [];
  for (const t of m.targets) {
    const previous = applied[t.name];
    if (previous && (t.release === undefined || t.release < previous.release)) out.push({ name: t.name, release: t.release, previous });
  }
  return out;
}

/** A release for people: the number, and the time it stands for when it is one (ms since the epoch). */
export function describeRelease(r: number | undefined): string {
  if (r === undefined) return 'no release (a bundle from before releases)';
  return r >= 1e11 && r < 1e14 ? `release ${r} (${new Date(r).toISOString()})` : `release ${r}`;
}

/** Refuses a rollback: one line naming the tag, both releases and the way out. */
export function refuseDowngrade(d: Downgrade[], label: string): never {
  const x = d[0];
  const more = d.length > 1 ? ` (and ${d.length - 1} more tag(s))` : '';
  throw new BlockportError(
    'EDOWNGRADE',
    `${label}: ${x.name} ${describeRelease(x.release)} is older than the ${describeRelease(x.previous.release)} applied before (${x.previous.digest})${more}; refusing a rollback (--allow-downgrade applies it anyway)`,
    { subject: x.name },
  );
}
