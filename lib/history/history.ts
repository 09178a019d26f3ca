import { setImmediate as nextTurn } from 'node:timers/promises';
import { clock } from '../clock';
import { isThenable } from '../delivery/call-listeners';
import { PostbackError } from '../errors';
import { actionStateOf } from '../journal/journal';
import type { JournalReadResult } from '../stores/store';
import type {
  ActionHistory,
  HistoryCount,
  HistoryEntry,
  HistoryLog,
  HistoryOutcome,
  HistoryPage,
  HistoryQuery,
  NewHistoryEntry,
} from './history-entry';
import { MAX_PAGE_SIZE, toHistoryFilter } from './history-query';
import { PerMinuteBudget } from './per-minute-budget';
import { entryForLog } from './sent-text';

/** Option `history` once checked. */
export interface HistorySettings {
  readonly retentionMs: number;
  readonly maxRejectedPerMinute: number;
}

/** `postbacks.history`: what happened to every postback, newest first. */
export interface PostbackHistory {
  /** A page of entries matching every filter given, newest first. A mistake in the query throws a TypeError. */
  list(query?: HistoryQuery): Promise<HistoryPage>;
  /** The journal's state of an action and every entry of it, oldest first (at most 10,000, the newest). */
  action(actionId: string): Promise<ActionHistory>;
  /** Refused or failed postbacks not stored since the receiver started, over `maxRejectedPerMinute`. */
  stats(): { readonly notStored: number };
  /**
   * How many entries arrived since `since` (default: 24 hours ago), by slice of `sliceMs` (default
   * 15 minutes, from 1 minute to a day), route, outcome and code: what an overview draws. A store
   * that cannot count has the newest 50,000 entries counted (`partial` then says so).
   */
  counts(query?: { readonly since?: Date; readonly sliceMs?: number }): Promise<HistoryCounts>;
  /**
   * Removes the entries older than `retentionMs` now, as the background pruning does every
   * minute: in batches of 500, a turn of the event loop between them, so postbacks are answered
   * meanwhile. Resolves with how many it removed; a call while one runs joins it.
   */
  prune(): Promise<number>;
}

export interface HistoryCounts {
  readonly since: Date;
  readonly sliceMs: number;
  readonly counts: readonly HistoryCount[];
  /** True when only the newest entries were counted (a store without counting of its own). */
  readonly partial: boolean;
}

export interface HistoryRecorder {
  readonly history: PostbackHistory;
  /**
   * Records the entry `entryOf` builds (not built for a refusal over the budget); a failure to
   * build or write it is reported, never thrown.
   */
  record(outcome: HistoryOutcome, entryOf: () => NewHistoryEntry): void;
  /** Stops the background pruning. */
  close(): void;
}

// Pruning runs in small batches with a turn of the event loop between them, so that a backlog
// of expired entries never holds postbacks up.
const PRUNE_EVERY_MS = 60_000;
const PRUNE_BATCH = 500;
const MAX_ACTION_ENTRIES = 10_000;
const DAY_MS = 86_400_000;
/** What a log without counting of its own has read and counted at most. */
const MAX_COUNTED = 50_000;

function pruneWhileKept(this: NodeJS.Timeout, pruning: WeakRef<{ run(): void }>): void {
  const kept = pruning.deref();
  if (kept === undefined) clearInterval(this);
  else kept.run();
}

export function createHistoryRecorder(
  log: HistoryLog,
  settings: HistorySettings,
  readJournal: ((subjects: readonly string[]) => JournalReadResult | Promise<JournalReadResult>) | null,
  reportError: (error: PostbackError) => void,
): HistoryRecorder {
  const unanswered = new PerMinuteBudget(settings.maxRejectedPerMinute);
  const logFailed = (cause: unknown): void => {
    reportError(new PostbackError('store.failed', 'a history entry could not be written', { cause }));
  };

  function record(outcome: HistoryOutcome, entryOf: () => NewHistoryEntry): void {
    // Nothing here may fail the postback: it was answered, or delivered, already.
    try {
      // Refusals and failures share a budget: a forged flood, or one sent while the router
      // closes, must not fill the log.
      if ((outcome === 'rejected' || outcome === 'failed') && !unanswered.take(clock.now())) return;
      const written = log.append(entryForLog(log, entryOf()));
      if (isThenable(written)) Promise.resolve(written).catch(logFailed);
    } catch (cause) {
      logFailed(cause);
    }
  }

  const retainedSince = (): Date => new Date(clock.now() - settings.retentionMs);

  async function list(query?: HistoryQuery): Promise<HistoryPage> {
    const filter = toHistoryFilter(query, retainedSince());
    // One more than asked tells whether a page follows.
    const found = await log.list({ ...filter, limit: filter.limit + 1 });
    const entries = found.slice(0, filter.limit);
    const last = entries.at(-1);
    return { entries, cursor: found.length > filter.limit && last !== undefined ? last.id : null };
  }

  async function action(actionId: string): Promise<ActionHistory> {
    if (typeof actionId !== 'string' || actionId === '') {
      throw new TypeError(
        `history.action(): the action id must be a non-empty string; got ${JSON.stringify(actionId)}`,
      );
    }
    const [record] = readJournal === null ? [null] : await readJournal([`action:${actionId}`]);
    const entries: HistoryEntry[] = [];
    let cursor: string | null = null;
    do {
      const page: HistoryPage = await list({
        actionId,
        limit: MAX_PAGE_SIZE,
        ...(cursor === null ? {} : { cursor }),
      });
      entries.push(...page.entries);
      cursor = page.cursor;
    } while (cursor !== null && entries.length < MAX_ACTION_ENTRIES);
    return { state: actionStateOf(record ?? null), entries: entries.slice(0, MAX_ACTION_ENTRIES).reverse() };
  }

  async function counts(query: { readonly since?: Date; readonly sliceMs?: number } = {}): Promise<HistoryCounts> {
    const sliceMs = query.sliceMs ?? 15 * 60_000;
    if (!Number.isSafeInteger(sliceMs) || sliceMs < 60_000 || sliceMs > DAY_MS) {
      throw new TypeError('history.counts(): sliceMs must be a whole number of ms from 60,000 to 86,400,000');
    }
    const since = query.since ?? new Date(clock.now() - DAY_MS);
    if (!(since instanceof Date) || Number.isNaN(since.getTime())) {
      throw new TypeError('history.counts(): since must be a valid Date');
    }
    const from = new Date(Math.max(since.getTime(), retainedSince().getTime()));
    if (log.count !== undefined) {
      return { since: from, sliceMs, counts: await log.count(from, sliceMs), partial: false };
    }
    return countListed(from, sliceMs);
  }

  /** Counts what list() reads, newest first, up to MAX_COUNTED entries. */
  async function countListed(since: Date, sliceMs: number): Promise<HistoryCounts> {
    const tally = new Map<string, HistoryCount>();
    let read = 0;
    let cursor: string | null = null;
    do {
      const page: HistoryPage = await list({ since, limit: MAX_PAGE_SIZE, ...(cursor === null ? {} : { cursor }) });
      for (const entry of page.entries) {
        const slice = Math.floor(entry.receivedAt.getTime() / sliceMs) * sliceMs;
        const key = `${slice}\n${entry.route}\n${entry.outcome}\n${entry.code ?? ''}`;
        const known = tally.get(key);
        tally.set(key, {
          slice,
          route: entry.route,
          outcome: entry.outcome,
          code: entry.code,
          count: (known?.count ?? 0) + 1,
        });
      }
      read += page.entries.length;
      cursor = page.cursor;
    } while (cursor !== null && read < MAX_COUNTED);
    return { since, sliceMs, counts: [...tally.values()], partial: cursor !== null };
  }

  /** The pruning under way, which a second caller joins. */
  let pruning: Promise<number> | null = null;
  function prune(): Promise<number> {
    pruning ??= (async () => {
      const before = retainedSince();
      let removed = 0;
      for (;;) {
        const batch = await log.prune(before, PRUNE_BATCH);
        removed += batch;
        if (batch < PRUNE_BATCH) return removed;
        await nextTurn();
      }
    })().finally(() => {
      pruning = null;
    });
    return pruning;
  }
  const scheduledPruning = {
    run: () => {
      prune().catch((cause: unknown) => {
        reportError(new PostbackError('store.failed', 'expired history entries could not be pruned', { cause }));
      });
    },
  };
  // The timer holds the pruning weakly: a router dropped without close() (and its store) is
  // collected, and the timer stops once it is.
  const pruner = setInterval(pruneWhileKept, PRUNE_EVERY_MS, new WeakRef(scheduledPruning));
  pruner.unref();

  return {
    history: {
      list,
      action,
      stats: () => ({ notStored: unanswered.notStored }),
      counts,
      prune,
    },
    record,
    close: () => {
      clearInterval(pruner);
      // This closure also holds the pruning for as long as the recorder lives (the timer holds it weakly).
      scheduledPruning.run = () => undefined;
    },
  };
}
