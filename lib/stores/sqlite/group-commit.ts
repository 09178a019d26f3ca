/**
 * Runs the writes of concurrent callers together, in one transaction and so one fsync. A write
 * submitted now waits until the end of the current turn of the event loop (setImmediate), by
 * which time the other postbacks that Node read in the same turn have submitted theirs; a
 * batch that fills to `maxBatch` is written at once. better-sqlite3 is synchronous, so while a
 * batch's fsync blocks the process the next requests gather in the kernel, and the next batch
 * is the larger for it: the busier the store, the fewer fsyncs per postback.
 *
 * `run` writes a batch in one transaction and gives one result per item; if it throws, the
 * whole transaction rolled back, and every caller in the batch gets the error.
 */
export class GroupCommit<I, R> {
  private queue: { item: I; resolve: (result: R) => void; reject: (error: unknown) => void }[] = [];
  private scheduled = false;

  constructor(
    private readonly run: (items: readonly I[]) => readonly R[],
    private readonly maxBatch = 256,
  ) {}

  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Writes what is queued now. */
  flush(): void {
    const batch = this.queue;
    if (batch.length === 0) return;
    this.queue = [];
    let results: readonly R[];
    try {
      results = this.run(batch.map((entry) => entry.item));
    } catch (error) {
      for (const entry of batch) entry.reject(error);
      return;
    }
    batch.forEach((entry, index) => {
      entry.resolve(results[index] as R);
    });
  }
}
