// The resolution lock: what apt and npm chose the first time, so that a rerun builds the same
// inputs even after the package mirrors have moved on (and without asking them again).
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname } from 'node:path';

/** sha256 (hex) of the JSON form of `value`: a cache key for a recipe. */
export function keyOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

let saves = 0;

/** A JSON file of resolved choices, keyed by what was asked. Delete it to resolve afresh. */
export class ResolutionLock {
  private dirty = false;
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly entries: Record<string, unknown>,
  ) {}

  /** Loads `file`, or starts an empty lock when it does not exist. */
  static async load(file: string): Promise<ResolutionLock> {
    try {
      const text = await fsp.readFile(file, 'utf8');
      return new ResolutionLock(file, JSON.parse(text) as Record<string, unknown>);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return new ResolutionLock(file, {});
    }
  }

  /** True when the lock holds an answer for `key`. */
  has(key: string): boolean {
    return key in this.entries;
  }

  /** Remembers `value` for `key` (saved by the next {@link save}). */
  put(key: string, value: unknown): void {
    this.entries[key] = value;
    this.dirty = true;
  }

  /** The remembered answer for `key`, or computes, remembers and saves it. */
  async remember<T>(key: string, compute: () => Promise<T>): Promise<T> {
    if (key in this.entries) return this.entries[key] as T;
    const value = await compute();
    this.entries[key] = value;
    this.dirty = true;
    await this.save();
    return value;
  }

  /** Writes the lock if anything changed (write to a temp name, then rename), one save at a time. */
  save(): Promise<void> {
    // Why a chain: with overlapping saves, an older snapshot could be renamed over a newer one.
    this.saving = this.saving.then(() => this.write());
    return this.saving;
  }

  private async write(): Promise<void> {
    if (!this.dirty) return;
    await fsp.mkdir(dirname(this.file), { recursive: true });
    const keys = Object.keys(this.entries).sort();
    const sorted = Object.fromEntries(keys.map((k) => [k, this.entries[k]]));
    this.dirty = false;
    const tmp = `${this.file}.${process.pid}.${++saves}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify(sorted, null, 1) + '\n');
    await fsp.rename(tmp, this.file);
  }
}
