import { KEEPS_SENT_TEXT } from '../../history/sent-text';
import type {
  HistoryCount,
  HistoryEntry,
  HistoryFilter,
  HistoryLog,
  NewHistoryEntry,
} from '../../history/history-entry';
import { entryOfRow, HISTORY_COLUMNS, rowValues, type HistoryRow } from '../../history/history-row';
import { GroupCommit } from './group-commit';
import type { SqliteDatabase } from './sqlite-inbox';

/** The history table and its indexes, one for each way the history is searched. */
export const SQLITE_HISTORY_DDL = `
  CREATE TABLE IF NOT EXISTS postback_history (
    -- AUTOINCREMENT: ids never come back after the newest rows are pruned, so cursors stay valid.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    trigger TEXT NOT NULL,
    route TEXT NOT NULL,
    format TEXT,
    ip TEXT,
    path TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    code TEXT,
    duration_ms REAL NOT NULL,
    key TEXT,
    subject TEXT,
    action_id TEXT,
    sub_id1 TEXT,
    -- The fields as JSON, or null where the text the request sent is kept: parsed when read.
    fields TEXT,
    sent_query TEXT,
    sent_body TEXT
  );
  CREATE INDEX IF NOT EXISTS postback_history_action_id ON postback_history (action_id, id) WHERE action_id IS NOT NULL;
  CREATE INDEX IF NOT EXISTS postback_history_sub_id1 ON postback_history (sub_id1, id) WHERE sub_id1 IS NOT NULL;
  CREATE INDEX IF NOT EXISTS postback_history_outcome ON postback_history (outcome, id);
  CREATE INDEX IF NOT EXISTS postback_history_code ON postback_history (code, id) WHERE code IS NOT NULL;
  CREATE INDEX IF NOT EXISTS postback_history_received ON postback_history (received_at);
`;

type Row = readonly (string | number | null)[];

/** Writes one entry: its values are `historyRow(entry)`. */
export const SQLITE_HISTORY_INSERT = `INSERT INTO postback_history (${HISTORY_COLUMNS.join(', ')})
  VALUES (${HISTORY_COLUMNS.map(() => '?').join(', ')})`;

export function historyRow(entry: NewHistoryEntry): Row {
  return rowValues(entry, (date) => date.getTime());
}

function hasSentColumns(db: SqliteDatabase): boolean {
  return db.prepare("SELECT 1 FROM pragma_table_info('postback_history') WHERE name = 'sent_body'").get() !== undefined;
}

/**
 * The INSERT of an entry. A store that only looks (`create: false`) may have opened a table an
 * earlier version made: its entries then fail with a message that says what to do, not with
 * SQLite's "no column named".
 */
function prepareInsert(db: SqliteDatabase): ReturnType<SqliteDatabase['prepare']> {
  if (!hasSentColumns(db)) {
    throw new Error(
      'SqliteStore: postback_history was made by an earlier version and lacks the columns sent_query and sent_body; open the file once with a SqliteStore that may create (create: true, the default) to add them',
    );
  }
  return db.prepare(SQLITE_HISTORY_INSERT);
}

/**
 * Adds the columns a table made by an earlier version lacks: looked for and added in one write
 * transaction, so that processes opening the file at once add them once.
 */
export function upgradeSqliteHistory(db: SqliteDatabase): void {
  db.transaction(() => {
    const columns = new Set(
      (db.prepare('PRAGMA table_info(postback_history)').all() as { name: string }[]).map((column) => column.name),
    );
    for (const column of ['sent_query', 'sent_body']) {
      if (!columns.has(column)) db.prepare(`ALTER TABLE postback_history ADD COLUMN ${column} TEXT`).run();
    }
  }).immediate();
}

/** The filters a query uses, each a column and how it compares. */
const CONDITIONS: readonly (readonly [keyof HistoryFilter, string])[] = [
  ['actionId', 'action_id = ?'],
  ['subId1', 'sub_id1 = ?'],
  ['outcome', 'outcome = ?'],
  ['route', 'route = ?'],
  ['code', 'code = ?'],
  ['until', 'received_at < ?'],
  ['before', 'id < ?'],
];

/**
 * SqliteStore's history: a table in the store's file. An answered postback's entry is written
 * by its commit (or its inbox row's arrival), in the same transaction. Other entries (duplicates,
 * refusals, failures, deliveries from the inbox and reconciliation) are appended in batches,
 * those of one turn of the event loop in one transaction, at the end of the turn, on the claims'
 * connection (no fsync of its own: a process that dies loses the entries of its last turn, a
 * power cut those of its last moments). A list first writes what is queued, so that it reads
 * every entry appended before it.
 */
export class SqliteHistory implements HistoryLog {
  readonly [KEEPS_SENT_TEXT] = true;
  /**
   * The entries of answered postbacks are written by the store's commits (see SqliteStore),
   * once the table has the columns this version writes (a store that only looks may open a
   * table an earlier version made: its entries, if any, are then appended apart and fail).
   */
  readonly writtenWithCommits: boolean;
  readonly #db: SqliteDatabase;
  readonly #writes: GroupCommit<Row, void>;
  readonly #queries = new Map<string, { all(...values: unknown[]): unknown[] }>();
  readonly #prune: { run(...values: unknown[]): { changes: number } };
  readonly #count: { all(...values: unknown[]): unknown[] };

  constructor(db: SqliteDatabase) {
    this.#db = db;
    this.writtenWithCommits = hasSentColumns(db);
    // Prepared on first use: a store that only looks may read a table an earlier version made.
    let insert: ReturnType<SqliteDatabase['prepare']> | undefined;
    // No batch is written before the turn ends, however large: an append never waits for a write.
    this.#writes = new GroupCommit<Row, void>(
      db.transaction((rows: readonly Row[]) =>
        rows.map((row) => {
          insert ??= prepareInsert(db);
          insert.run(...row);
        }),
      ).immediate,
      Number.MAX_SAFE_INTEGER,
    );
    this.#count = db.prepare(
      `SELECT (received_at / CAST(? AS INTEGER)) * CAST(? AS INTEGER) AS slice, route, outcome, code, count(*) AS count
         FROM postback_history WHERE received_at >= ? GROUP BY slice, route, outcome, code`,
    );
    this.#prune = db.prepare(
      `DELETE FROM postback_history WHERE id IN
         (SELECT id FROM postback_history WHERE received_at < ? ORDER BY received_at LIMIT ?)`,
    );
  }

  append(entry: NewHistoryEntry): Promise<void> {
    return this.#writes.submit(historyRow(entry));
  }

  list(filter: HistoryFilter): readonly HistoryEntry[] {
    this.#writes.flush();
    const used = CONDITIONS.filter(([name]) => filter[name] !== null);
    const shape = used.map(([name]) => name).join(',');
    let query = this.#queries.get(shape);
    if (query === undefined) {
      const where = ['received_at >= ?', ...used.map(([, condition]) => condition)].join(' AND ');
      query = this.#db.prepare(`SELECT * FROM postback_history WHERE ${where} ORDER BY id DESC LIMIT ?`);
      this.#queries.set(shape, query);
    }
    const values = used.map(([name]) => {
      const value = filter[name];
      return value instanceof Date ? value.getTime() : name === 'before' ? Number(value) : value;
    });
    const rows = query.all(filter.since.getTime(), ...values, filter.limit) as HistoryRow[];
    return rows.map(entryOfRow);
  }

  count(since: Date, sliceMs: number): readonly HistoryCount[] {
    this.#writes.flush();
    return this.#count.all(sliceMs, sliceMs, since.getTime()) as HistoryCount[];
  }

  prune(before: Date, limit: number): number {
    this.#writes.flush();
    return this.#prune.run(before.getTime(), limit).changes;
  }

  /** Writes what is queued; the store calls it as it closes. */
  flush(): void {
    this.#writes.flush();
  }
}
