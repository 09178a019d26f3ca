import type { NewHistoryEntry } from '../../history/history-entry';
import { randomUUID } from 'node:crypto';
import { readByReconciliationSince } from '../../journal/journal';
import { ClaimLostError } from '../claim-lost';
import { GroupCommit } from './group-commit';
import type {
  CommitOutcome,
  InboxClaim,
  InboxEntry,
  InboxQuery,
  InboxRow,
  InboxStats,
  InboxStatus,
  JournalRecord,
  StoreInbox,
} from '../store';
import { clock } from '../../clock';

/** A row delivered: marked so, with its subject's new record, unless its lease ran out. */
interface Delivery {
  readonly row: InboxRow;
  readonly token: string;
  /** The journal record the delivery read, as stored (JSON). */
  readonly readText: string | null;
  readonly record: JournalRecord | null;
  readonly outcome: CommitOutcome;
  readonly now: number;
}

/** A postback to store, and when it arrived. */
interface Arrival {
  readonly entry: InboxEntry;
  readonly now: number;
  /** The arrival's history entry, written with its row. */
  readonly history: NewHistoryEntry | undefined;
}

/** The part of better-sqlite3 the inbox uses. */
export interface SqliteDatabase {
  exec(source: string): unknown;
  prepare(source: string): {
    run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
    get(...params: unknown[]): unknown;
    all(...params: unknown[]): unknown[];
  };
  transaction<A extends unknown[], R>(fn: (...args: A) => R): { readonly immediate: (...args: A) => R };
}

export interface SqliteInboxSettings {
  /** How long a handled key and a delivered row are kept, in ms. */
  readonly retentionMs: number;
  /** How long a worker holds a row it delivers, renewed while listeners run, in ms. */
  readonly leaseMs: number;
  /** The store's own writes, in the transaction of the caller: a key handled, a subject's record. */
  readonly writes: SqliteWrites;
  /** Whether to create the table and its indexes when they are missing. */
  readonly create: boolean;
}

/** What SqliteStore writes for a claim's commit, and its inbox for an arrival and a delivery. */
export interface SqliteWrites {
  /** Marks the key handled, for the retention. */
  commitKey(key: string, now: number): void;
  /** Upserts the subject's journal record, for the retention. */
  writeRecord(subject: string, record: JournalRecord, now: number): void;
  /**
   * Whether the holder of a claim on `hold` (a subject, or `key:` and a key) may still write: it
   * holds it, or nobody does and the subject's record is still the one read (`readText`, as
   * stored).
   */
  mayWrite(hold: string, holder: string, subject: string | null, readText: string | null, now: number): boolean;
  /** Gives a hold up, if it is the holder's. */
  unhold(hold: string, holder: string): void;
  /** Writes a history entry (in the transaction under way). */
  writeHistory(entry: NewHistoryEntry): void;
}

/** How often a worker looks for rows that another process on the file stored. */
export const SQLITE_POLL_MS = 250;

interface RowRecord {
  id: number;
  key: string;
  subject: string | null;
  route: string;
  format: string;
  ip: string;
  path: string;
  received_at: number;
  fields: string;
  status: InboxStatus;
  attempts: number;
  last_error: string | null;
  next_attempt_at: number;
  delivered_at: number | null;
  outcome: CommitOutcome | null;
}

function rowOf(record: RowRecord): InboxRow {
  return {
    id: record.id,
    key: record.key,
    subject: record.subject,
    route: record.route,
    format: record.format,
    ip: record.ip,
    path: record.path,
    receivedAt: new Date(record.received_at),
    fields: record.fields,
    status: record.status,
    attempts: record.attempts,
    lastError: record.last_error,
    nextAttemptAt: new Date(record.next_attempt_at),
    deliveredAt: record.delivered_at === null ? null : new Date(record.delivered_at),
    outcome: record.outcome,
  };
}

/** A failed attempt's record, as the `failed` statement takes it. */
interface Failure {
  readonly id: number;
  readonly token: string;
  readonly error: string;
  readonly retryAt: number | null;
}

/**
 * SqliteStore's inbox: a table in the same file. A postback and its dedupe key are stored in one
 * transaction. A worker holds the row it delivers by a lease; its commit marks the row delivered
 * and writes the journal in one transaction. Listeners' own writes are not part of it (SQLite's
 * transactions cannot stay open while they await): a process that dies after a listener's
 * effect and before that commit delivers the row again, so effects must be idempotent on the
 * postback's key. Processes on the same file find each other's rows by polling.
 */
export class SqliteInbox implements StoreInbox<undefined> {
  private readonly wakers = new Set<() => void>();
  private readonly arrivals: GroupCommit<Arrival, 'stored' | 'duplicate'>;
  /** Rows marked delivered with their journal records, in groups; null, or why a row was not. */
  private readonly deliveries: GroupCommit<Delivery, string | null>;
  private readonly nextTransaction: (token: string, now: number) => InboxClaim<undefined> | null;
  private readonly sql;

  /**
   * `db` writes with an fsync per transaction (arrivals and deliveries, in groups); `leaseDb`,
   * a second connection on the same file, takes rows for delivery without one: a lease lost to
   * a power cut only lets the row be delivered again, as a lapsed lease does.
   */
  constructor(
    db: SqliteDatabase,
    private readonly settings: SqliteInboxSettings,
    leaseDb: SqliteDatabase = db,
  ) {
    if (settings.create)
      db.exec(`
      CREATE TABLE IF NOT EXISTS postback_inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        subject TEXT,
        route TEXT NOT NULL,
        format TEXT NOT NULL,
        ip TEXT NOT NULL,
        path TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        fields TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at INTEGER NOT NULL,
        leased_by TEXT,
        lease_until INTEGER NOT NULL DEFAULT 0,
        delivered_at INTEGER,
        outcome TEXT
      );
      CREATE INDEX IF NOT EXISTS postback_inbox_waiting ON postback_inbox (id)
        WHERE status IN ('pending', 'retrying');
      CREATE INDEX IF NOT EXISTS postback_inbox_subject ON postback_inbox (subject, id)
        WHERE status IN ('pending', 'retrying');
      CREATE INDEX IF NOT EXISTS postback_inbox_status ON postback_inbox (status, id);
      -- Every row of a subject, delivered ones too: a retried row learns whether a later one of
      -- its action was delivered already.
      CREATE INDEX IF NOT EXISTS postback_inbox_subject_all ON postback_inbox (subject, id);
    `);
    const keyState = db.prepare('SELECT state, expires_at FROM postback_keys WHERE key = ?');
    const insert = db.prepare(`
      INSERT INTO postback_inbox (key, subject, route, format, ip, path, received_at, fields, status, next_attempt_at)
      VALUES (@key, @subject, @route, @format, @ip, @path, @receivedAt, @fields, 'pending', @now)
    `);
    const addOne = ({ entry, now, history }: Arrival): 'stored' | 'duplicate' => {
      const found = keyState.get(entry.key) as { state: number; expires_at: number } | undefined;
      if (found !== undefined && found.expires_at > now) return 'duplicate';
      settings.writes.commitKey(entry.key, now);
      insert.run({ ...entry, receivedAt: entry.receivedAt.getTime(), now });
      if (history !== undefined) settings.writes.writeHistory(history);
      return 'stored';
    };
    // The postbacks that arrive at the same time are stored in one transaction, one fsync.
    this.arrivals = new GroupCommit<Arrival, 'stored' | 'duplicate'>(
      db.transaction((batch: readonly Arrival[]) => batch.map(addOne)).immediate,
    );

    // The oldest row due whose subject has no earlier row waiting (a subject's postbacks are
    // delivered in the order they arrived, a later one waiting while an earlier is retried), and
    // that no claim holds now: a direct one (reconciliation, another process's postback) or
    // another row's. `superseded`: a later lifecycle postback of its action was delivered,
    // whatever came of it (the row died and was retried), so it must not move the action back.
    const due = leaseDb.prepare(`
      SELECT r.*, (r.route = 'actions' AND EXISTS (
          SELECT 1 FROM postback_inbox l
          WHERE l.subject = r.subject AND l.id > r.id AND l.route = 'actions' AND l.status = 'delivered'))
        AS superseded
      FROM postback_inbox r
      WHERE r.status IN ('pending', 'retrying') AND r.next_attempt_at <= @now AND r.lease_until <= @now
        AND NOT EXISTS (
          SELECT 1 FROM postback_inbox e
          WHERE e.subject = r.subject AND e.id < r.id AND e.status IN ('pending', 'retrying'))
        AND NOT EXISTS (SELECT 1 FROM postback_holds h WHERE h.subject = r.subject AND h.held_until > @now)
      ORDER BY r.id LIMIT 1
    `);
    const lease = leaseDb.prepare('UPDATE postback_inbox SET leased_by = ?, lease_until = ? WHERE id = ?');
    const hold = leaseDb.prepare(
      'INSERT OR REPLACE INTO postback_holds (subject, held_by, held_until) VALUES (?, ?, ?)',
    );
    const journal = leaseDb.prepare('SELECT record, expires_at FROM postback_journal WHERE subject = ?');
    this.nextTransaction = leaseDb.transaction((token: string, now: number) => {
      const found = due.get({ now }) as (RowRecord & { superseded: number }) | undefined;
      if (found === undefined) return null;
      lease.run(token, now + settings.leaseMs, found.id);
      let read: string | null = null;
      if (found.subject !== null) {
        hold.run(found.subject, token, now + settings.leaseMs);
        const entry = journal.get(found.subject) as { record: string | null; expires_at: number } | undefined;
        if (entry?.record != null && entry.expires_at > now) read = entry.record;
      }
      return this.claimOf(rowOf(found), token, read, found.superseded === 1);
    }).immediate;

    this.sql = {
      rowState: db.prepare('SELECT status, leased_by FROM postback_inbox WHERE id = ?'),
      delivered: db.prepare(`
        UPDATE postback_inbox SET status = 'delivered', outcome = ?, delivered_at = ?,
          last_error = NULL, leased_by = NULL, lease_until = 0
        WHERE id = ? AND leased_by = ?`),
      failed: db.prepare(`
        UPDATE postback_inbox SET last_error = @error,
          status = CASE WHEN @retryAt IS NULL THEN 'dead' ELSE 'retrying' END,
          next_attempt_at = coalesce(@retryAt, next_attempt_at), leased_by = NULL, lease_until = 0
        WHERE id = @id AND leased_by = @token`),
      // The failure and the action's hold let go in one transaction: a row marked dead whose
      // second write failed would be dead with no `dead` event, its recordFailure having failed.
      failedAndUnheld: db.transaction((failure: Failure, subject: string | null): boolean => {
        const { changes } = this.sql.failed.run(failure);
        if (subject !== null) settings.writes.unhold(subject, failure.token);
        return changes > 0;
      }).immediate,
      // With the count of the attempt it began, if it began one.
      giveBack: db.prepare(
        'UPDATE postback_inbox SET leased_by = NULL, lease_until = 0, attempts = max(attempts - ?, 0) WHERE id = ? AND leased_by = ?',
      ),
      // Counted as the attempt begins, on the connection that writes leases: the count outlives
      // the process, and a power cut before the file's next synced commit loses it as it loses
      // the lease.
      start: leaseDb.prepare('UPDATE postback_inbox SET attempts = attempts + 1 WHERE id = ? AND leased_by = ?'),
      renew: leaseDb.prepare('UPDATE postback_inbox SET lease_until = ? WHERE id = ? AND leased_by = ?'),
      renewHold: leaseDb.prepare('UPDATE postback_holds SET held_until = ? WHERE subject = ? AND held_by = ?'),
      counts: db.prepare('SELECT status, count(*) AS count FROM postback_inbox GROUP BY status'),
      oldest: db.prepare(
        "SELECT min(received_at) AS oldest FROM postback_inbox WHERE status IN ('pending', 'retrying')",
      ),
      list: db.prepare('SELECT * FROM postback_inbox ORDER BY id DESC LIMIT ?'),
      listByStatus: db.prepare('SELECT * FROM postback_inbox WHERE status = ? ORDER BY id DESC LIMIT ?'),
      // Not a row a worker holds now: its delivery's end (written under the lease alone) would
      // undo the reset, or take back a count the reset already took.
      retryOne: db.prepare(`
        UPDATE postback_inbox SET status = 'pending', attempts = 0, next_attempt_at = @now, last_error = NULL
        WHERE id = @id AND status <> 'delivered' AND lease_until <= @now`),
      retryDead: db.prepare(`
        UPDATE postback_inbox SET status = 'pending', attempts = 0, next_attempt_at = ?, last_error = NULL
        WHERE status = 'dead'`),
      prune: db.prepare("DELETE FROM postback_inbox WHERE status = 'delivered' AND delivered_at <= ?"),
    };
    const { sql } = this;
    const deliveredOne = ({ row, token, readText, record, outcome, now }: Delivery): string | null => {
      // Not thrown: that would roll back the other rows of the group.
      const state = sql.rowState.get(row.id) as { status: InboxStatus; leased_by: string | null } | undefined;
      // Marked delivered before, its answer lost: nothing to write again.
      if (state?.status === 'delivered') return null;
      const held =
        state?.leased_by === token &&
        (row.subject === null || settings.writes.mayWrite(row.subject, token, row.subject, readText, now));
      if (!held) return `inbox row ${row.id} is no longer held by this worker (its lease ran out)`;
      sql.delivered.run(outcome, now, row.id, token);
      if (row.subject !== null) {
        if (record !== null) settings.writes.writeRecord(row.subject, record, now);
        settings.writes.unhold(row.subject, token);
      }
      return null;
    };
    this.deliveries = new GroupCommit<Delivery, string | null>(
      db.transaction((batch: readonly Delivery[]) => batch.map(deliveredOne)).immediate,
    );
  }

  async add(entry: InboxEntry, history?: NewHistoryEntry): Promise<'stored' | 'duplicate'> {
    const result = await this.arrivals.submit({ entry, now: clock.now(), history });
    if (result === 'stored') this.wake();
    return result;
  }

  /**
   * Writes the arrivals and deliveries waiting for their group's transaction now, and ends every
   * wait for work: the store is closing.
   */
  close(): void {
    this.arrivals.flush();
    this.deliveries.flush();
    this.wake();
  }

  next(): Promise<InboxClaim<undefined> | null> {
    return Promise.resolve(this.nextTransaction(randomUUID(), clock.now()));
  }

  waitForWork(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      // Other processes on the file store rows too: this one only learns of them by looking.
      const timer = setTimeout(done, Math.min(ms, SQLITE_POLL_MS));
      this.wakers.add(done);
    });
  }

  stats(): Promise<InboxStats> {
    const counts = { pending: 0, retrying: 0, dead: 0, delivered: 0 };
    for (const row of this.sql.counts.all() as { status: InboxStatus; count: number }[]) counts[row.status] = row.count;
    const { oldest } = this.sql.oldest.get() as { oldest: number | null };
    return Promise.resolve({ ...counts, oldestPendingAgeMs: oldest === null ? null : clock.now() - oldest });
  }

  list(query: InboxQuery = {}): Promise<InboxRow[]> {
    const limit = query.limit ?? 50;
    const rows = query.status === undefined ? this.sql.list.all(limit) : this.sql.listByStatus.all(query.status, limit);
    return Promise.resolve((rows as RowRecord[]).map(rowOf));
  }

  retry(target: number | { readonly status: 'dead' }): Promise<number> {
    const now = clock.now();
    const { changes } =
      typeof target === 'number' ? this.sql.retryOne.run({ now, id: target }) : this.sql.retryDead.run(now);
    if (changes > 0) this.wake();
    return Promise.resolve(changes);
  }

  /** Deletes rows delivered longer ago than the retention; returns how many. */
  prune(now: number): number {
    return this.sql.prune.run(now - this.settings.retentionMs).changes;
  }

  private wake(): void {
    for (const waker of [...this.wakers]) waker();
  }

  private claimOf(row: InboxRow, token: string, readText: string | null, superseded: boolean): InboxClaim<undefined> {
    const { sql, settings } = this;
    const previous = readText === null ? null : (JSON.parse(readText) as JournalRecord);
    // Or reconciliation wrote the action's state from impact.com after this row arrived.
    const overtaken = superseded || (row.route === 'actions' && readByReconciliationSince(previous, row.receivedAt));
    const commit = async (record: JournalRecord | null, outcome: CommitOutcome): Promise<void> => {
      const problem = await this.deliveries.submit({ row, token, readText, record, outcome, now: clock.now() });
      if (problem !== null) throw new ClaimLostError(problem);
    };
    let started = false;
    return {
      row,
      previous,
      superseded: overtaken,
      transaction: undefined,
      transactional: false,
      commit,
      release: () => undefined,
      // Promises made by an executor, though better-sqlite3 answers at once: the interface promises
      // that these reject, so a failing statement (SQLITE_BUSY, a lost lease) must not throw at the caller.
      start: () =>
        new Promise<void>((resolve) => {
          if (sql.start.run(row.id, token).changes === 0) throw new ClaimLostError(`inbox row ${row.id}`);
          started = true;
          resolve();
        }),
      recordFailure: (error, retryAfterMs) =>
        new Promise<boolean>((resolve) => {
          const retryAt = retryAfterMs === null ? null : clock.now() + retryAfterMs;
          resolve(sql.failedAndUnheld({ id: row.id, token, error, retryAt }, row.subject));
        }),
      giveBack: () =>
        new Promise<void>((resolve) => {
          sql.giveBack.run(started ? 1 : 0, row.id, token);
          if (row.subject !== null) settings.writes.unhold(row.subject, token);
          resolve();
        }),
      leaseMs: settings.leaseMs,
      renew: () => {
        const until = clock.now() + settings.leaseMs;
        if (sql.renew.run(until, row.id, token).changes === 0) throw new ClaimLostError(`inbox row ${row.id}`);
        if (row.subject !== null) sql.renewHold.run(until, row.subject, token);
      },
    };
  }
}
