import type { HistoryEntry, NewHistoryEntry } from './history-entry';
import { fieldsOfSent } from './sent-text';

/** The columns of a history table, in the order the SQL stores write them. */
export const HISTORY_COLUMNS = [
  'received_at',
  'trigger',
  'route',
  'format',
  'ip',
  'path',
  'outcome',
  'status',
  'code',
  'duration_ms',
  'key',
  'subject',
  'action_id',
  'sub_id1',
  'fields',
  'sent_query',
  'sent_body',
] as const;

/** A history table's row as a driver reads it: ids and times as each database gives them. */
export interface HistoryRow {
  readonly id: number | string;
  /** ms since the epoch (SQLite) or a Date (PostgreSQL). */
  readonly received_at: number | Date;
  readonly trigger: HistoryEntry['trigger'];
  readonly route: HistoryEntry['route'];
  readonly format: HistoryEntry['format'];
  readonly ip: string | null;
  readonly path: string;
  readonly outcome: HistoryEntry['outcome'];
  readonly status: number | null;
  readonly code: HistoryEntry['code'];
  readonly duration_ms: number;
  readonly key: string | null;
  readonly subject: string | null;
  readonly action_id: string | null;
  readonly sub_id1: string | null;
  /** JSON text (SQLite), or parsed already (PostgreSQL's json); null where the text sent is kept instead. */
  readonly fields: string | HistoryEntry['fields'];
  /** The text the request sent (see SentText); absent from a table made before these columns. */
  readonly sent_query?: string | null;
  readonly sent_body?: string | null;
}

/**
 * A row's values for HISTORY_COLUMNS, the time as `time` turns it: the text the request sent
 * where the entry has it (no JSON to make), the fields as JSON text otherwise.
 */
export function rowValues<T>(entry: NewHistoryEntry, time: (date: Date) => T): (T | string | number | null)[] {
  return [
    time(entry.receivedAt),
    entry.trigger,
    entry.route,
    entry.format,
    entry.ip,
    entry.path,
    entry.outcome,
    entry.status,
    entry.code,
    entry.durationMs,
    entry.key,
    entry.subject,
    entry.actionId,
    entry.subId1,
    entry.sent !== undefined || entry.fields === null ? null : JSON.stringify(entry.fields),
    entry.sent?.query ?? null,
    entry.sent?.body ?? null,
  ];
}

export function entryOfRow(row: HistoryRow): HistoryEntry {
  return Object.freeze({
    id: String(row.id),
    trigger: row.trigger,
    receivedAt: new Date(row.received_at),
    route: row.route,
    format: row.format,
    ip: row.ip,
    path: row.path,
    outcome: row.outcome,
    status: row.status,
    code: row.code,
    durationMs: row.duration_ms,
    key: row.key,
    subject: row.subject,
    actionId: row.action_id,
    subId1: row.sub_id1,
    fields: fieldsOfRow(row),
  });
}

function fieldsOfRow(row: HistoryRow): HistoryEntry['fields'] {
  if (typeof row.fields === 'string') return JSON.parse(row.fields) as HistoryEntry['fields'];
  if (row.fields !== null) return row.fields;
  const query = row.sent_query ?? null;
  if (query === null) return null;
  return Object.freeze(fieldsOfSent(row.format, { query, body: row.sent_body ?? null }));
}
