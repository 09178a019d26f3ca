import { KEEPS_SENT_TEXT } from './sent-text';
import { entryFacts, matches } from './entry-facts';
import type { HistoryEntry, HistoryFilter, HistoryLog, NewHistoryEntry } from './history-entry';

/** How many entries a MemoryStore keeps by default: the newest, the oldest overwritten. */
export const DEFAULT_MEMORY_HISTORY_ENTRIES = 10_000;
/**
 * The text postbacks sent (or, for an entry without it, its fields' keys and values) that the
 * ring keeps at most, in characters (16 to 32 MB): bodies near the router's `limit` would
 * otherwise keep 10,000 such bodies alive. Past it the oldest entries go first; the newest is
 * always kept.
 */
export const MAX_MEMORY_HISTORY_CHARS = 16 * 1024 * 1024;

/**
 * History in the process's memory: a ring of the newest entries (MemoryStore's, and the
 * receiver's for a store that keeps none). The ring holds each entry as it was appended, which
 * for a postback keeps the text it sent (see SentText): the entry a reader gets is made as it
 * reads, its fields parsed again.
 */
export class MemoryHistory implements HistoryLog {
  readonly [KEEPS_SENT_TEXT] = true;
  readonly #capacity: number;
  /** Made on the first entry: a store whose router keeps no history holds no ring. */
  #ring: (NewHistoryEntry | undefined)[] = [];
  /** Entries appended so far; the next entry's id is this plus one. */
  #count = 0;
  /** Ids at or below this were pruned. */
  #prunedThrough = 0;
  /** The characters of sent text the ring holds. */
  #chars = 0;

  /** `capacity`: a positive whole number, checked by the caller. */
  constructor(capacity: number = DEFAULT_MEMORY_HISTORY_ENTRIES) {
    this.#capacity = capacity;
  }

  append(entry: NewHistoryEntry): void {
    if (this.#ring.length === 0) this.#ring = new Array<NewHistoryEntry | undefined>(this.#capacity);
    this.#count += 1;
    const index = this.#count % this.#ring.length;
    const overwritten = this.#ring[index];
    if (overwritten !== undefined) this.#chars -= charsOf(overwritten);
    this.#ring[index] = entry;
    this.#chars += charsOf(entry);
    while (this.#chars > MAX_MEMORY_HISTORY_CHARS && this.#oldestKept() < this.#count) this.#drop(this.#oldestKept());
  }

  /** Removes the oldest entry kept, whose id is `id`. */
  #drop(id: number): void {
    const index = id % this.#ring.length;
    const entry = this.#ring[index];
    if (entry !== undefined) this.#chars -= charsOf(entry);
    this.#ring[index] = undefined;
    this.#prunedThrough = id;
  }

  list(filter: HistoryFilter): readonly HistoryEntry[] {
    const found: HistoryEntry[] = [];
    const newest = filter.before === null ? this.#count : Math.min(this.#count, Number(filter.before) - 1);
    const oldest = this.#oldestKept();
    for (let id = newest; id >= oldest && found.length < filter.limit; id -= 1) {
      const entry = this.#ring[id % this.#ring.length] as NewHistoryEntry;
      if (matches(entry, filter)) found.push(readEntry(String(id), entry));
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
      const entry = this.#ring[index] as NewHistoryEntry;
      if (entry.receivedAt >= before) break;
      this.#drop(id);
      removed += 1;
    }
    return removed;
  }
}

/** The characters of text an entry keeps: what was sent, or its fields' keys and values. */
function charsOf(entry: NewHistoryEntry): number {
  return entry.sent === undefined ? textSize(entry.fields) : entry.sent.query.length + (entry.sent.body?.length ?? 0);
}

function textSize(value: unknown): number {
  if (typeof value === 'string') return value.length;
  if (value === null || typeof value !== 'object') return 0;
  let size = 0;
  for (const [key, item] of Object.entries(value)) size += key.length + textSize(item);
  return size;
}

/**
 * The entry a reader gets: frozen, since a record of money must not change, with its fields
 * made from the text the request sent where the log kept that.
 */
export function readEntry(id: string, entry: NewHistoryEntry): HistoryEntry {
  return Object.freeze({ id, ...entryFacts(entry), fields: Object.freeze(entry.fields) });
}
