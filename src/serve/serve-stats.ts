import type { Digest } from '../digest/digest.js';
import type { ServedManifest } from './served-image.js';

/** What a server moved, against what a plain registry copy of the same manifests moves. */
export interface ServeSummary {
  requests: number;
  manifests: number;
  /** Blobs clients fetched (whole or in part) and the body bytes sent for them. */
  moved: { blobs: number; bytes: number };
  /**
   * Every blob the fetched image manifests name, as a plain `skopeo copy` of them into an empty
   * destination fetches: what the clients skipped because they had it is the difference.
   */
  plainCopy: { blobs: number; bytes: number };
  /** Standard layers spliced from blocks into the cache (once each). */
  spliced: { layers: number; bytes: number };
}

/** Counts requests and bytes as the server answers them. */
export class ServeStats {
  requests = 0;
  private readonly manifests = new Set<Digest>();
  private readonly named = new Map<Digest, number>();
  private readonly moved = new Map<Digest, number>();

  /** A manifest sent with its body: the blobs it names join the plain-copy baseline. */
  manifestSent(m: ServedManifest): void {
    if (this.manifests.has(m.digest)) return;
    this.manifests.add(m.digest);
    try {
      const parsed = JSON.parse(m.bytes.toString()) as { config?: { digest: Digest; size: number }; layers?: { digest: Digest; size: number }[] };
      for (const d of [parsed.config, ...(parsed.layers ?? [])]) if (d) this.named.set(d.digest, d.size);
    } catch {
      // served as stored; a manifest that does not parse names nothing here
    }
  }

  blobSent(digest: Digest, bytes: number): void {
    this.moved.set(digest, (this.moved.get(digest) ?? 0) + bytes);
  }

  summary(spliced: { layers: number; bytes: number }): ServeSummary {
    const sum = (m: Map<Digest, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    return {
      requests: this.requests,
      manifests: this.manifests.size,
      moved: { blobs: this.moved.size, bytes: sum(this.moved) },
      plainCopy: { blobs: this.named.size, bytes: sum(this.named) },
      spliced: { ...spliced },
    };
  }
}
