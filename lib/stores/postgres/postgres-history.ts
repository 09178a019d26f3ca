import { KEEPS_SENT_TEXT } from '../../history/sent-text';
import type {
  HistoryCount,
  HistoryEntry,
  HistoryFilter,
  HistoryLog,
  NewHistoryEntry,
} from '../../history/history-entry';
import { entryOfRow, HISTORY_COLUMNS, rowValues, type HistoryRow } from '../../history/history-row';
import type { PgQueryResult } from './postgres-store';
import { sqlLiteral } from './postgres-literal';

type Run = (text: string, values?: unknown[]) => Promise<PgQueryResult>;

// At most this many entries in one INSERT: 15 parameters each, well under PostgreSQL's 65,535.
const MAX_BATCH = 500;
/** Entries that may wait for PostgreSQL at most, beyond the batch being written. */
const MAX_WAITING = 10_000;

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

/** A history value as an SQL literal (strings as postgresRow made them). */
function historyLiteral(value: Date | string | number | null): string {
  if (value instanceof Date) return `${sqlLiteral(value.toISOString())}::timestamptz`;
  // duration_ms is a fraction.
  if (typeof value === 'number' && !Number.isInteger(value)) return Number.isFinite(value) ? String(value) : '0';
  return sqlLiteral(value);
}

/** The indexed columns a sender's text goes into. */
const SENDER_INDEXED = ['action_id', 'sub_id1'].map((column) => HISTORY_COLUMNS.indexOf(column as never));
/**
 * A B-tree index entry holds at most 2,704 bytes: a longer value would fail the INSERT, and with
 * it the postback's commit. Such a value is left out of its column (the entry is not found by
 * it; its fields still hold it).
 */
const MAX_INDEXED_BYTES = 2000;

/**
 * An entry's values for HISTORY_COLUMNS as PostgreSQL takes them. Its text holds no U+0000,
 * which a form body, or a field no rule checks, may carry raw: an entry keeps U+FFFD in its
 * place rather than fail the postback's commit (or its batch). Swapped before the lengths are
 * measured, as U+FFFD takes three bytes.
 */
function postgresRow(entry: NewHistoryEntry): (Date | string | number | null)[] {
  const values = rowValues(entry, (date) => date).map((value) =>
    typeof value === 'string' && value.includes('\0') ? value.replaceAll('\0', '\uFFFD') : value,
  );
  for (const index of SENDER_INDEXED) {
    const value = values[index];
    if (
      typeof value === 'string' &&
      value.length * 3 > MAX_INDEXED_BYTES &&
      Buffer.byteLength(value) > MAX_INDEXED_BYTES
    ) {
      values[index] = null;
    }
  }
  return values;
}

/** How the history table comes to be: made on first use, or required (a store that only looks). */
export interface HistoryTable {
  readonly name: string;
  /** Answers one row with `exists`. */
  readonly presentSql: string;
  /** Its DDL; null when the store may not create anything. */
  readonly createSql: string | null;
}

/** Entries waiting to be written, and the promise of their INSERT. */
interface Gathering {
  readonly entries: NewHistoryEntry[];
  readonly written: Promise<void>;
  /** Settles `written` as the INSERT does. */
  readonly settle: (insert: Promise<void>) => void;
}

function gathering(): Gathering {
  let settle: (insert: Promise<void>) => void = () => undefined;
  const written = new Promise<void>((resolve) => {
    settle = resolve;
  });
  return { entries: [], written, settle };
}

/**
 * PostgresStore's history: a table beside the store's. The entries of one turn of the event
 * loop go in one INSERT, outside any postback's transaction, so that an answer never waits for
 * its entry. A list waits for the entries appended before it.
 */
export class PostgresHistory implements HistoryLog {
  readonly [KEEPS_SENT_TEXT] = true;
  /** Known to be there with this version's columns: the store's commits then write the entries. */
  #tableKnown = false;
  readonly #table: string;
  readonly #run: Run;
  readonly #source: HistoryTable;
  /** Resolves once the table is there; a failure is tried again on the next use. */
  #ready: Promise<void> | null = null;
  /**
   * The entries waiting to be written: sent at the end of the turn they came in, or, while a
   * batch is being written, as soon as it is done (so a slow database gets fewer, larger batches).
   */
  #gathering: Gathering | null = null;
  /** The batch being written: one at a time, so that ids follow the order postbacks were answered in. */
  #writing: Promise<void> | null = null;
  /** The table was made by an earlier version, and this store may not add the columns it lacks. */
  #outdated = false;

  constructor(table: HistoryTable, run: Run) {
    this.#table = table.name;
    this.#source = table;
    this.#run = run;
  }

  /**
   * True once the table is known to be there: answered postbacks' entries are then written by
   * their commits, in their own transactions. Until then (the first moments, or a database
   * whose routers may not create it and that was not migrated) they are appended apart.
   */
  get writtenWithCommits(): boolean {
    return this.#tableKnown;
  }

  /**
   * The statement that writes an entry, its values written in (a commit sends its statements as
   * one query string, which takes no parameters).
   */
  insertSql(entry: NewHistoryEntry, where?: string): string {
    const values = postgresRow(entry).map(historyLiteral).join(', ');
    const columns = HISTORY_COLUMNS.join(', ');
    // With a condition: written only when it holds (an inbox row's entry, only once it is stored).
    return where === undefined
      ? `INSERT INTO ${this.#table} (${columns}) VALUES (${values})`
      : `INSERT INTO ${this.#table} (${columns}) SELECT ${values} WHERE ${where}`;
  }

  /**
   * Looks for the table (making it if the store may) through `run`, so that commits may write
   * entries; the store calls it as it first makes sure of its own objects, on a connection of
   * its own. A failure is not thrown: entries are then appended apart, and each append tries again.
   */
  async prepare(run: Run): Promise<void> {
    // Not through #ensure: an append may be waiting there for the very store set-up that calls this.
    try {
      this.#tableKnown = await this.#makeSure(run);
    } catch {
      // Another instance making the table at the same moment loses nothing by it: look again.
      this.#tableKnown = await this.#isCurrent(run).catch(() => false);
    }
  }

  /**
   * Makes the table on first use if it is missing and the store may: apart from the store's own
   * objects, so that a database whose routers may not create it still takes postbacks.
   */
  #ensure(): Promise<void> {
    this.#ready ??= this.#makeSure(this.#run).then(
      (current) => {
        this.#tableKnown = current;
      },
      (error: unknown) => {
        this.#ready = null;
        throw error;
      },
    );
    return this.#ready;
  }

  /**
   * Makes sure the table is there, making it (or adding the columns an earlier version's lacks)
   * if the store may; true when commits may write entries: it has every column this version
   * writes, and the database is UTF-8 (in another encoding, a character a sender sent that it
   * lacks would fail the commit: entries are then written apart, and only they fail).
   */
  async #makeSure(run: Run): Promise<boolean> {
    const { rows } = await run(this.#source.presentSql);
    const found = rows[0] as { exists?: unknown; current?: unknown; utf8?: unknown } | undefined;
    const utf8 = found?.utf8 === true;
    this.#outdated = false;
    if (found?.current === true) return utf8;
    if (this.#source.createSql !== null) {
      await run(this.#source.createSql);
      return utf8;
    }
    // A store that only looks reads a table an earlier version made as it is.
    this.#outdated = found?.exists === true;
    if (this.#outdated) return false;
    throw new Error(`PostgresStore: the database has no ${this.#table}; create it with: impact-postbacks migrate`);
  }

  async #isCurrent(run: Run): Promise<boolean> {
    const { rows } = await run(this.#source.presentSql);
    const found = rows[0] as { current?: unknown; utf8?: unknown } | undefined;
    return found?.current === true && found.utf8 === true;
  }

  append(entry: NewHistoryEntry): Promise<void> {
    if (this.#gathering === null) {
      this.#gathering = gathering();
      setImmediate(() => {
        this.#sendWhenIdle();
      });
    }
    // While PostgreSQL cannot keep up (or is down), what waits is bounded: the excess is refused.
    if (this.#gathering.entries.length >= MAX_WAITING) {
      return Promise.reject(
        new Error(`${MAX_WAITING} history entries are waiting for PostgreSQL; this one is dropped`),
      );
    }
    this.#gathering.entries.push(entry);
    return this.#gathering.written;
  }

  /** Writes what was gathered unless a batch is being written (which sends it when done). */
  #sendWhenIdle(): void {
    const batch = this.#gathering;
    if (this.#writing !== null || batch === null) return;
    this.#gathering = null;
    const writing = this.#write(batch.entries);
    this.#writing = writing;
    batch.settle(writing);
    const next = (): void => {
      this.#writing = null;
      this.#sendWhenIdle();
    };
    writing.then(next, next);
  }

  async list(filter: HistoryFilter): Promise<readonly HistoryEntry[]> {
    await this.flush();
    await this.#ensure();
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
      // Every column: a table an earlier version made, read by a store that only looks, has fewer.
      `SELECT * FROM ${this.#table} WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT $${values.length}`,
      values,
    );
    return (rows as HistoryRow[]).map(entryOfRow);
  }

  async count(since: Date, sliceMs: number): Promise<readonly HistoryCount[]> {
    await this.flush();
    await this.#ensure();
    const { rows } = await this.#run(
      `SELECT (floor(extract(epoch FROM received_at) * 1000 / $1) * $1)::float8 AS slice, route, outcome, code,
              count(*)::int AS count
         FROM ${this.#table} WHERE received_at >= $2 GROUP BY 1, 2, 3, 4`,
      [sliceMs, since],
    );
    return rows as HistoryCount[];
  }

  async prune(before: Date, limit: number): Promise<number> {
    await this.flush();
    await this.#ensure();
    const { rowCount } = await this.#run(
      `DELETE FROM ${this.#table} WHERE id IN
         (SELECT id FROM ${this.#table} WHERE received_at < $1 ORDER BY received_at LIMIT $2)`,
      [before, limit],
    );
    return rowCount ?? 0;
  }

  /** Waits until every entry appended so far is written (or failed: the appenders' to report). */
  async flush(): Promise<void> {
    while (this.#writing !== null || this.#gathering !== null) {
      this.#sendWhenIdle();
      await (this.#writing ?? Promise.resolve()).catch(() => undefined);
    }
  }

  async #write(entries: readonly NewHistoryEntry[]): Promise<void> {
    await this.#ensure();
    if (this.#outdated) {
      // Looked for again at the next batch: a migration needs no restart.
      this.#ready = null;
      throw new Error(
        `PostgresStore: ${this.#table} was made by an earlier version and lacks the columns sent_query and sent_body; add them with: impact-postbacks migrate`,
      );
    }
    for (let first = 0; first < entries.length; first += MAX_BATCH) {
      const values: unknown[] = [];
      const rows = entries.slice(first, first + MAX_BATCH).map((entry) => {
        const offset = values.length;
        values.push(...postgresRow(entry));
        return `(${HISTORY_COLUMNS.map((_, index) => `$${offset + index + 1}`).join(', ')})`;
      });
      // One after the other: a large batch takes one connection of the pool, not several.
      await this.#run(`INSERT INTO ${this.#table} (${HISTORY_COLUMNS.join(', ')}) VALUES ${rows.join(', ')}`, values);
    }
  }
}
