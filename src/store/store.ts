import { promises as fsp } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { removeDeadTemps } from '../cas/atomic.js';
import { acquireLock, type Lock } from '../cas/lock.js';
import { digestHex, type Digest } from '../digest/digest.js';
import { BlockportError, fromSystemError } from '../errors.js';
import { LayoutImageWriter, OciLayout, type LayoutImageReader } from '../oci/layout.js';
import type { OpenOptions } from '../oci/image.js';
import { Annotation } from '../oci/media-types.js';
import { checkNameTag } from '../oci/reference.js';
import { entrySubject, isReferrerEntry, standsFor } from '../oci/referrer-entries.js';
import { resolveImage } from '../oci/resolve.js';
import { fsck, type FsckOptions, type FsckReport } from './fsck.js';
import { gcStore, type GcResult } from './gc.js';
import { VerifiedLayers } from './verified.js';

/** The local store's folder: $BLOCKPORT_HOME, else $XDG_DATA_HOME/blockport, else ~/.local/share/blockport. */
export function storeHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BLOCKPORT_HOME) return env.BLOCKPORT_HOME;
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'blockport');
}

/** An image the store tags. */
export interface StoreImage {
  name: string;
  digest: Digest;
}

/**
 * The local store (docs/spec.md section 11): an OCI image layout whose tags are NAME:TAG, plus
 * what blockport keeps beside it: the store lock, apply's staging folders, the record of
 * verified layers. Everything that changes the store goes through here.
 */
export class Store {
  readonly layout: OciLayout;
  readonly verified: VerifiedLayers;

  constructor(readonly home: string) {
    this.layout = new OciLayout(home);
    this.verified = new VerifiedLayers(home);
  }

  /** The store at $BLOCKPORT_HOME (see storeHome). */
  static open(env: NodeJS.ProcessEnv = process.env): Store {
    return new Store(storeHome(env));
  }

  /**
   * Takes the store lock (apply, pull); a second holder fails at once with ELOCKED. Holding it,
   * removes what killed writers left (`.NAME.tmp-PID-*` of dead pids, see removeDeadTemps) at the
   * store's top, in blobs/ and in verified/: a re-run then leaves the store clean.
   */
  async lock(): Promise<Lock> {
    await fsp.mkdir(this.home, { recursive: true }).catch((err) => Promise.reject(fromSystemError(err, this.home)));
    const lock = await acquireLock(join(this.home, '.lock'), `the store ${this.home}`);
    for (const dir of [this.home, this.layout.blobs.dir, this.verified.dir]) await removeDeadTemps(dir);
    return lock;
  }

  /** Where an apply of the bundle `bundle` stages its blobs: inside the store, so moving them in is a rename. */
  stagingDir(bundle: Digest): string {
    return join(this.home, 'staging', digestHex(bundle));
  }

  /** Opens the image tagged `name`; its reader trusts the store's verified-layer records. */
  async openImage(name: string, label = name, opts?: OpenOptions): Promise<LayoutImageReader> {
    return this.layout.openImage(name, label, this.verified, opts).catch((err) => {
      if (err instanceof BlockportError && err.code === 'ENOTFOUND') {
        throw new BlockportError('ENOTFOUND', `no image ${name} in the store (${this.home}); see 'blockport images'`, { subject: name });
      }
      throw err;
    });
  }

  /** A writer that tags `name` at commit. */
  async openWriter(name: string, label = name): Promise<LayoutImageWriter> {
    await this.layout.init();
    return new LayoutImageWriter(label, this.layout, name);
  }

  /** Every tagged image, by name; an empty list for a store that does not exist yet. */
  async images(): Promise<StoreImage[]> {
    const index = await this.layout.readIndex().catch((err) => {
      if (err instanceof BlockportError && err.code === 'ENOTFOUND') return { manifests: [] };
      throw err;
    });
    const out: StoreImage[] = [];
    for (const m of index.manifests) {
      const name = m.annotations?.[Annotation.refName];
      // a signature tagged NAME:sha256-<hex>.sig travels with its image; it is not one
      if (name && !isReferrerEntry(m)) out.push({ name, digest: m.digest });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /**
   * Untags images (their blobs go at the next gc). Every name is checked first: with one unknown
   * name nothing is untagged and the error names it.
   */
  async rmi(names: string[]): Promise<{ removed: string[]; referrers: number }> {
    const held = new Set((await this.images()).map((i) => i.name));
    for (const n of names) checkNameTag(n, 'rmi');
    const unknown = names.filter((n) => !held.has(n));
    if (unknown.length) throw new BlockportError('ENOTFOUND', `no image ${unknown.join(', ')} in the store (nothing removed)`, { subject: unknown[0] });
    const gone = await this.standsForTags(new Set(names));
    const removed: string[] = [];
    for (const n of names) if (await this.layout.untag(n)) removed.push(n);
    const referrers = gone ? await this.pruneReferrers(gone) : 0;
    return { removed, referrers };
  }

  /** The digests the images tagged `names` stand for (see standsFor), or undefined when one does not resolve. */
  private async standsForTags(names: ReadonlySet<string>): Promise<Set<string> | undefined> {
    const out = new Set<string>();
    for (const d of (await this.layout.readIndex()).manifests) {
      const name = d.annotations?.[Annotation.refName];
      if (!name || !names.has(name) || isReferrerEntry(d)) continue;
      const img = await resolveImage(d, (x) => this.layout.readBlob(x), name).catch(() => undefined);
      if (!img) return undefined;
      for (const x of standsFor({ ...img, top: d })) out.add(x);
    }
    return out;
  }

  /**
   * Drops the signatures, SBOMs and attestations of the digests `gone` that no image still tagged
   * stands for, and theirs in turn (a signature of an SBOM), so that gc frees their blobs; returns
   * how many. Only referrers of the untagged images are candidates: those an apply running at the
   * same time lists before it tags its image are not touched.
   */
  private async pruneReferrers(gone: Set<string>): Promise<number> {
    const entries = (await this.layout.readIndex()).manifests;
    const names = new Set(entries.filter((d) => !isReferrerEntry(d)).map((d) => d.annotations?.[Annotation.refName]).filter((n): n is string => Boolean(n)));
    const live = await this.standsForTags(names);
    if (!live) return 0; // an image that does not resolve (fsck names it) might own some: keep them all
    for (const d of live) gone.delete(d);
    const drop = new Set<string>();
    for (let grew = true; grew; ) {
      grew = false;
      for (const r of entries.filter(isReferrerEntry)) {
        const subject = entrySubject(r);
        if (drop.has(r.digest) || subject === undefined || !(gone.has(subject) || drop.has(subject))) continue;
        drop.add(r.digest);
        grew = true;
      }
    }
    return drop.size ? this.layout.prune((d) => !isReferrerEntry(d) || !drop.has(d.digest)) : 0;
  }

  gc(opts: { graceMs?: number; dryRun?: boolean; now?: number } = {}): Promise<GcResult> {
    return gcStore(this.layout, opts);
  }

  fsck(opts: FsckOptions = {}): Promise<FsckReport> {
    return fsck(this.layout, opts);
  }
}
