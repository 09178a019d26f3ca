import type { HistoryEntry, HistoryFilter, HistoryLog, NewHistoryEntry } from '../../history/history-entry';
import { entryFacts, matches } from '../../history/entry-facts';
import { KEEPS_SENT_TEXT, fieldsOfSent, type SentText } from '../../history/sent-text';

type RunScript = (script: string, keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

// Scripts, not commands: a client passed as option client needs only eval.
const APPEND = `return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])`;
const PAGE = `return redis.call('XREVRANGE', KEYS[1], ARGV[1], '-', 'COUNT', ARGV[2])`;
// The oldest items written before a time, at most ARGV[2] of them (XTRIM takes no exact limit).
const PRUNE = `local items = redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[1] .. '-0', 'COUNT', ARGV[2])
for _, item in ipairs(items) do redis.call('XDEL', KEYS[1], item[1]) end
return #items`;

/**
 * Stream entries read per round trip while a list looks for matches: small, as each read holds
 * Redis (and the claims pipelined behind it on the store's connection) while it runs.
 */
const READ_PAGE = 200;
// A stream id is <ms>-<seq>; as a decimal id, ms × 2^20 + seq: increasing as the stream's, and
// under 2^63 (19 digits) until the year 2248.
const SEQUENCE_BITS = 20n;

/** The decimal id of a stream id. */
function decimalOf(streamId: string): string {
  const [ms = '0', seq = '0'] = streamId.split('-');
  return ((BigInt(ms) << SEQUENCE_BITS) + BigInt(seq)).toString();
}

/** The stream id of a decimal id. */
function streamIdOf(decimal: string): string {
  const value = BigInt(decimal);
  return `${(value >> SEQUENCE_BITS).toString()}-${(value & ((1n << SEQUENCE_BITS) - 1n)).toString()}`;
}

/** The time a stream id was written, in ms. */
function writtenAt(streamId: string): number {
  return Number(streamId.slice(0, streamId.indexOf('-')));
}

/**
 * A stored entry: `receivedAt` as ISO text, as JSON keeps a Date; `sent` (the text the request
 * sent) in place of the fields where the entry has it.
 */
type StoredEntry = Omit<HistoryEntry, 'id' | 'receivedAt'> & { readonly receivedAt: string; readonly sent?: SentText };

function storedEntry(entry: NewHistoryEntry): StoredEntry {
  const { sent } = entry;
  return {
    ...entryFacts(entry),
    receivedAt: entry.receivedAt.toISOString(),
    ...(sent === undefined ? { fields: entry.fields } : { fields: null, sent }),
  };
}

/**
 * RedisStore's history: a stream capped at about `maxEntries` (the newest kept), an entry per
 * stream item as JSON. Redis keeps no index to search by: a list reads the stream newest first,
 * a page at a time, and keeps what matches, so a search for a rare action reads up to the
 * whole stream.
 */
export class RedisHistory implements HistoryLog {
  readonly [KEEPS_SENT_TEXT] = true;
  constructor(
    private readonly run: RunScript,
    private readonly key: string,
    private readonly maxEntries: number,
  ) {}

  async append(entry: NewHistoryEntry): Promise<void> {
    await this.run(APPEND, [this.key], [this.maxEntries, JSON.stringify(storedEntry(entry))]);
  }

  async list(filter: HistoryFilter): Promise<readonly HistoryEntry[]> {
    const found: HistoryEntry[] = [];
    // Exclusive of the cursor's item: '(' (Redis 6.2 and later).
    let from = filter.before === null ? '+' : `(${streamIdOf(filter.before)}`;
    const since = filter.since.getTime();
    for (;;) {
      const page = (await this.run(PAGE, [this.key], [from, READ_PAGE])) as [string, string[]][];
      for (const [streamId, values] of page) {
        // Written after it arrived: an item written before `since` arrived before it, as did all older ones.
        if (writtenAt(streamId) < since) return found;
        const { sent, ...stored } = JSON.parse(values[1] ?? '{}') as StoredEntry;
        const entry = { ...stored, receivedAt: new Date(stored.receivedAt) };
        if (matches(entry, filter)) {
          found.push(
            Object.freeze({
              ...entry,
              id: decimalOf(streamId),
              fields: sent === undefined ? entry.fields : Object.freeze(fieldsOfSent(entry.format, sent)),
            }),
          );
          if (found.length >= filter.limit) return found;
        }
      }
      const last = page.at(-1);
      if (page.length < READ_PAGE || last === undefined) return found;
      from = `(${last[0]}`;
    }
  }

  /**
   * Removes up to `limit` of the oldest items written before `before`: a stream is ordered by
   * the time its items were written, which is after their arrival.
   */
  async prune(before: Date, limit: number): Promise<number> {
    return Number(await this.run(PRUNE, [this.key], [before.getTime(), limit]));
  }
}
