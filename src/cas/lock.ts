import { promises as fsp } from 'node:fs';
import { BlockportError, fromSystemError } from '../errors.js';

/** A held lock; `release` is idempotent. */
export interface Lock {
  release(): Promise<void>;
}

/** Whether a process with this pid exists (EPERM means it does, owned by someone else). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes an exclusive lock file holding our pid. A lock left by a dead process (kill -9) is stale
 * and taken over; a live holder makes this fail at once with ELOCKED rather than wait silently.
 */
export async function acquireLock(path: string, what: string): Promise<Lock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await fsp.open(path, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          await fsp.rm(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(err, path);
    }
    const text = await fsp.readFile(path, 'utf8').catch(() => '');
    const pid = Number.parseInt(text.trim(), 10);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new BlockportError('ELOCKED', `${what} is in use by process ${pid} (lock ${path}); try again when it finishes`, { subject: path });
    }
    if (text === '' && attempt === 0) {
      // the holder may be between create and write; give it a moment before calling it stale
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    await fsp.rm(path, { force: true });
  }
  throw new BlockportError('ELOCKED', `could not take the lock ${path}`, { subject: path });
}
