import type { HistoryEntry, HistoryFilter, HistoryLog, NewHistoryEntry } from '../../history/history-entry';
import type { PgQueryResult } from './postgres-store';

type Run = (text: string, values?: unknown[]) => Promise<PgQueryResult>;

const COLUMNS = [
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
] as const;

// At most this many entries in one INSERT: 15 parameters each, well under PostgreSQL's 65,535.
const MAX_BATCH = 500;

/** The filters a query uses, each a column and how it compares with its parameter. */
const CONDITIONS: readonly (readonly [keyof HistoryFilter, string])[] = [
  ['actionId', 'action_id ='],
  ['subId1', 'sub_id1 ='],
  ['outcome', 'outcome ='],
  ['route', 'route ='],
  ['code', 'code ='],
  ['until', 'received_at <'],
  ['before', 'id <'],
];

interface StoredRow {
  readonly id: string;
  readonly received_at: Date;
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
  readonly fields: HistoryEntry['fields'];
}

/** The entries of one turn, and the promise of their INSERT. */
interface Gathering {
  readonly entries: NewHistoryEntry[];
  readonly written: Promise<void>;
  /** Ends the gathering: the entries are written now. */
  readonly send: () => void;
}

/**
 * PostgresStore's history: a table beside the store's. The entries of one turn of the event
 * loop go in one INSERT, outside any postback's transaction, so that an answer never waits for
 * its entry. A list waits for the entries appended before it.
 */
export class PostgresHistory implements HistoryLog {
  readonly #table: string;
  readonly #run: Run;
  /** The batch gathering this turn's entries, written when the turn ends (or on a flush). */
  #gathering: Gathering | null = null;
  /** Batches being written, which a list waits for. */
  readonly #writing = new Set<Promise<void>>();
  /** The last batch sent: the next is written after it. */
  #tail: Promise<void> = Promise.resolve();

  constructor(table: string, run: Run) {
    this.#table = table;
    this.#run = run;
  }

  append(entry: NewHistoryEntry): Promise<void> {
    this.#gathering ??= this.#gather();
    this.#gathering.entries.push(entry);
    return this.#gathering.written;
  }

  async list(filter: HistoryFilter): Promise<readonly HistoryEntry[]> {
    await this.flush();
    const values: unknown[] = [filter.since];
    const where = ['received_at >= $1'];
    for (const [name, comparison] of CONDITIONS) {
      const value = filter[name];
      if (value === null) continue;
      values.push(value);
      where.push(`${comparison} $${values.length}`);
    }
    values.push(filter.limit);
    const { rows } = await this.#run(
      `SELECT id, ${COLUMNS.join(', ')} FROM ${this.#table} WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT $${values.length}`,
      values,
    );
    return (rows as StoredRow[]).map(entryOfRow);
  }

  async prune(before: Date, limit: number): Promise<number> {
    await this.flush();
    const { rowCount } = await this.#run(
      `DELETE FROM ${this.#table} WHERE id IN
         (SELECT id FROM ${this.#table} WHERE received_at < $1 ORDER BY received_at LIMIT $2)`,
      [before, limit],
    );
    return rowCount ?? 0;
  }

  /** Sends the batch being gathered and waits for every batch being written; failures are the appenders' to report. */
  async flush(): Promise<void> {
    this.#gathering?.send();
    await Promise.allSettled([...this.#writing]);
  }

  #gather(): Gathering {
    const entries: NewHistoryEntry[] = [];
    let send = (): void => undefined;
    const sent = new Promise<void>((resolve) => {
      send = () => {
        if (this.#gathering?.entries === entries) this.#gathering = null;
        resolve();
      };
    });
    // One batch after the other: ids then follow the order the postbacks were answered in, as
    // two INSERTs on two connections would not (one waiting for a new connection).
    const written = sent.then(() => {
      const batch = this.#tail.then(() => this.#write(entries));
      this.#tail = batch.catch(() => undefined);
      return batch;
    });
    this.#writing.add(written);
    const done = (): void => {
      this.#writing.delete(written);
    };
    written.then(done, done);
    setImmediate(send);
    return { entries, written, send };
  }

  async #write(entries: readonly NewHistoryEntry[]): Promise<void> {
    const inserts: Promise<unknown>[] = [];
    for (let first = 0; first < entries.length; first += MAX_BATCH) {
      const values: unknown[] = [];
      const rows = entries.slice(first, first + MAX_BATCH).map((entry) => {
        const offset = values.length;
        values.push(
          entry.receivedAt,
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
          entry.fields === null ? null : JSON.stringify(entry.fields),
        );
        return `(${COLUMNS.map((_, index) => `$${offset + index + 1}`).join(', ')})`;
      });
      inserts.push(this.#run(`INSERT INTO ${this.#table} (${COLUMNS.join(', ')}) VALUES ${rows.join(', ')}`, values));
    }
    await Promise.all(inserts);
  }
}

function entryOfRow(row: StoredRow): HistoryEntry {
  return Object.freeze({
    id: row.id,
    trigger: row.trigger,
    receivedAt: row.received_at,
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
    fields: row.fields,
  });
}
