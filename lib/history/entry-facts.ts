/* What the logs that filter entries in process share: MemoryHistory, and RedisHistory, whose stream has no index. */
import type { HistoryEntry, HistoryFilter, NewHistoryEntry } from './history-entry';

/** What an entry records besides its fields, as a plain object (an entry may be a class's, its fields a getter). */
export function entryFacts(entry: NewHistoryEntry): Omit<HistoryEntry, 'id' | 'fields'> {
  return {
    trigger: entry.trigger,
    receivedAt: entry.receivedAt,
    route: entry.route,
    format: entry.format,
    ip: entry.ip,
    path: entry.path,
    outcome: entry.outcome,
    status: entry.status,
    code: entry.code,
    durationMs: entry.durationMs,
    key: entry.key,
    subject: entry.subject,
    actionId: entry.actionId,
    subId1: entry.subId1,
  };
}

/** Whether an entry passes a filter's conditions other than its cursor and limit. */
export function matches(entry: Omit<HistoryEntry, 'id' | 'fields'>, filter: HistoryFilter): boolean {
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
