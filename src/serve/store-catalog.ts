import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Digest } from '../digest/digest.js';
import { Annotation } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import type { Store } from '../store/store.js';
import { servedImage, type BlobSource, type ServedImage, type ServedManifest } from './served-image.js';

/** Repository names as the distribution spec allows them (no registry host, no port). */
export const REPO_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/** Store name `team/app:1` as repository `team/app` and tag `1`; undefined when it cannot be one. */
export function splitStoreName(name: string): { repo: string; tag: string } | undefined {
  const i = name.lastIndexOf(':');
  if (i <= 0 || i < name.lastIndexOf('/')) return undefined;
  const repo = name.slice(0, i);
  const tag = name.slice(i + 1);
  return REPO_RE.test(repo) && TAG_RE.test(tag) ? { repo, tag } : undefined;
}

/**
 * The store's tags as repositories, re-read whenever `index.json` changes (an apply or
 * materialize while the server runs is seen by the next request). How each image is served is
 * computed once per top digest: content-addressed, so it never goes stale.
 */
export class StoreCatalog {
  private stamp = '';
  private repos = new Map<string, Map<string, Descriptor>>();
  private readonly images = new Map<Digest, Promise<ServedImage>>();

  constructor(readonly store: Store) {}

  get layout() {
    return this.store.layout;
  }

  /** Repository name -> tag -> the store's descriptor, fresh from index.json. */
  async repositories(): Promise<Map<string, Map<string, Descriptor>>> {
    const st = await fsp.stat(join(this.layout.root, 'index.json')).catch(() => undefined);
    const stamp = st ? `${st.ino}:${st.size}:${st.mtimeMs}` : 'none';
    if (stamp === this.stamp) return this.repos;
    const repos = new Map<string, Map<string, Descriptor>>();
    const idx = st ? await this.layout.readIndex() : { manifests: [] };
    for (const d of idx.manifests) {
      const parts = splitStoreName(d.annotations?.[Annotation.refName] ?? '');
      if (!parts) continue;
      if (!repos.has(parts.repo)) repos.set(parts.repo, new Map());
      repos.get(parts.repo)!.set(parts.tag, d);
    }
    this.repos = repos;
    this.stamp = stamp;
    return repos;
  }

  async tags(repo: string): Promise<Map<string, Descriptor> | undefined> {
    return (await this.repositories()).get(repo);
  }

  /** How the store image `repo:tag` is served. */
  image(repo: string, tag: string, top: Descriptor): Promise<ServedImage> {
    let p = this.images.get(top.digest);
    if (!p) {
      p = servedImage(this.store, `${repo}:${tag}`, top);
      this.images.set(top.digest, p);
      p.catch(() => this.images.delete(top.digest)); // a store being written may succeed later
    }
    return p;
  }

  /** The served images of every tag of `repo`, skipping any that cannot be read. */
  private async *imagesOf(repo: string): AsyncGenerator<ServedImage> {
    for (const [tag, top] of (await this.tags(repo)) ?? []) {
      const img = await this.image(repo, tag, top).catch(() => undefined);
      if (img) yield img;
    }
  }

  /** A manifest of `repo` by digest. */
  async manifestByDigest(repo: string, digest: Digest): Promise<ServedManifest | undefined> {
    for await (const img of this.imagesOf(repo)) {
      const m = img.manifests.get(digest);
      if (m) return m;
    }
    return undefined;
  }

  /** A blob some image of `repo` names. */
  async blob(repo: string, digest: Digest): Promise<BlobSource | undefined> {
    for await (const img of this.imagesOf(repo)) {
      const b = img.blobs.get(digest);
      if (b) return b;
    }
    return undefined;
  }
}
