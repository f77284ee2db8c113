/**
 * Runs async tasks at most `limit` at a time. `add` waits while `limit + queue` tasks are pending,
 * so a fast producer (blockify spooling blocks) cannot pile up temp files faster than they upload.
 * After the first failure, `add` and `drain` throw it; tasks not yet started are dropped.
 */
export class TaskPool {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly slotWaiters: Array<() => void> = [];
  private readonly all = new Set<Promise<void>>();
  private failed?: { error: unknown };

  constructor(
    readonly limit = 4,
    readonly queue = limit * 2,
  ) {}

  /** The first error a task threw, if any. */
  get error(): unknown {
    return this.failed?.error;
  }

  private check(): void {
    if (this.failed) throw this.failed.error;
  }

  /** Queues `task`; resolves once it is queued (not run), rejects with an earlier task's error. */
  async add(task: () => Promise<void>): Promise<void> {
    this.check();
    while (this.all.size >= this.limit + this.queue) {
      await new Promise<void>((r) => this.slotWaiters.push(r));
      this.check();
    }
    const p = this.run(task);
    this.all.add(p);
    void p.finally(() => {
      this.all.delete(p);
      this.slotWaiters.shift()?.();
    });
  }

  private async run(task: () => Promise<void>): Promise<void> {
    if (this.running >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      if (!this.failed) await task();
    } catch (error) {
      this.failed ??= { error };
      this.slotWaiters.splice(0).forEach((r) => r());
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  /** Waits for every queued task; throws the first error any of them threw. */
  async drain(): Promise<void> {
    while (this.all.size) await Promise.all([...this.all]);
    this.check();
  }
}
