// What every scenario builder gets: where to write, the caches, and a logger.
import type { Apt } from './apt.js';
import type { ResolutionLock } from './lockfile.js';

/** Shared state of one build run. */
export interface BuildContext {
  /** The output folder (bench/work). */
  out: string;
  /** The download cache: .debs, npm tarballs, the resolution lock. */
  cache: string;
  apt: Apt;
  lock: ResolutionLock;
  log: (line: string) => void;
}
