import type { ServedManifest } from './served-image.js';

/** What a server moved, against what a plain registry copy of the same manifests moves. */
export interface ServeSummary {
  requests: number;
  /** Manifests sent with their body (each is one client copying one image). */
  manifests: number;
  /** Blob responses with a body (whole or ranged) and the body bytes sent. */
  moved: { blobs: number; bytes: number };
  /**
   * For every manifest sent, every blob it names, as a plain `skopeo copy` of that image into an
   * empty destination fetches it: the difference from `moved` is what the clients already had.
   */
  plainCopy: { blobs: number; bytes: number };
  /** Standard layers spliced from blocks into the cache (once each). */
  spliced: { layers: number; bytes: number };
}

interface Named {
  config?: { size: number };
  layers?: { size: number }[];
}

/** Counts requests and bytes as the server answers them. */
export class ServeStats {
  requests = 0;
  private manifests = 0;
  private readonly moved = { blobs: 0, bytes: 0 };
  private readonly plainCopy = { blobs: 0, bytes: 0 };

  /** A manifest sent with its body: a plain copy of that image would fetch every blob it names. */
  manifestSent(m: ServedManifest): void {
    this.manifests++;
    let parsed: Named;
    try {
      parsed = JSON.parse(m.bytes.toString()) as Named;
    } catch {
      return; // served as stored; a manifest that does not parse names nothing here
    }
    for (const d of [parsed.config, ...(parsed.layers ?? [])]) {
      if (typeof d?.size !== 'number') continue;
      this.plainCopy.blobs++;
      this.plainCopy.bytes += d.size;
    }
  }

  blobSent(bytes: number): void {
    this.moved.blobs++;
    this.moved.bytes += bytes;
  }

  summary(spliced: { layers: number; bytes: number }): ServeSummary {
    return { requests: this.requests, manifests: this.manifests, moved: { ...this.moved }, plainCopy: { ...this.plainCopy }, spliced: { ...spliced } };
  }
}
