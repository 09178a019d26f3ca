import type { HistoryEntry, HistoryFilter, HistoryLog, NewHistoryEntry } from './history-entry';

/** How many entries a MemoryStore keeps by default: the newest, the oldest overwritten. */
export const DEFAULT_MEMORY_HISTORY_ENTRIES = 10_000;

/**
 * History in the process's memory: a ring of the newest entries (MemoryStore's, and the
 * receiver's for a store that keeps none). An entry holds the event's own frozen record of the
 * fields, so recording one copies nothing.
 */
export class MemoryHistory implements HistoryLog {
  readonly #capacity: number;
  /** Made on the first entry: a store whose router keeps no history holds no ring. */
  #ring: (HistoryEntry | undefined)[] = [];
  /** Entries appended so far; the next entry's id is this plus one. */
  #count = 0;
  /** Ids at or below this were pruned. */
  #prunedThrough = 0;

  /** `capacity`: a positive whole number, checked by the caller. */
  constructor(capacity: number = DEFAULT_MEMORY_HISTORY_ENTRIES) {
    this.#capacity = capacity;
  }

  append(entry: NewHistoryEntry): void {
    if (this.#ring.length === 0) this.#ring = new Array<HistoryEntry | undefined>(this.#capacity);
    this.#count += 1;
    // Frozen: every reader gets this one object, and a record of money must not change.
    this.#ring[this.#count % this.#ring.length] = Object.freeze({ id: String(this.#count), ...entry });
  }

  list(filter: HistoryFilter): readonly HistoryEntry[] {
    const found: HistoryEntry[] = [];
    const newest = filter.before === null ? this.#count : Math.min(this.#count, Number(filter.before) - 1);
    const oldest = this.#oldestKept();
    for (let id = newest; id >= oldest && found.length < filter.limit; id -= 1) {
      const entry = this.#ring[id % this.#ring.length] as HistoryEntry;
      if (matches(entry, filter)) found.push(entry);
    }
    return found;
  }

  /** The id of the oldest entry still in the ring. */
  #oldestKept(): number {
    return Math.max(this.#prunedThrough + 1, this.#count - this.#capacity + 1, 1);
  }

  prune(before: Date, limit: number): number {
    // Entries are appended in about the order they arrive: the oldest are at the ring's tail.
    let removed = 0;
    const oldest = this.#oldestKept();
    for (let id = oldest; id <= this.#count && removed < limit; id += 1) {
      const index = id % this.#ring.length;
      const entry = this.#ring[index] as HistoryEntry;
      if (entry.receivedAt >= before) break;
      this.#ring[index] = undefined;
      this.#prunedThrough = id;
      removed += 1;
    }
    return removed;
  }
}

/** Whether an entry passes a filter's conditions other than its cursor and limit. */
export function matches(entry: HistoryEntry, filter: HistoryFilter): boolean {
  return (
    (filter.actionId === null || entry.actionId === filter.actionId) &&
    (filter.subId1 === null || entry.subId1 === filter.subId1) &&
    (filter.outcome === null || entry.outcome === filter.outcome) &&
    (filter.route === null || entry.route === filter.route) &&
    (filter.code === null || entry.code === filter.code) &&
    entry.receivedAt >= filter.since &&
    (filter.until === null || entry.receivedAt < filter.until)
  );
}
