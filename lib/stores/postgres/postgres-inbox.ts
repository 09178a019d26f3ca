import type { NewHistoryEntry } from '../../history/history-entry';
import { readByReconciliationSince } from '../../journal/journal';
import { AttemptCounter } from './postgres-attempts';
import { sqlLiteral } from './postgres-literal';
import {
  PostgresClaim,
  type CommitWrites,
  type Connection,
  type PgQueryResult,
  type PostgresParts,
} from './postgres-claim';
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

const LOCK_NOT_AVAILABLE = '55P03';

interface RowRecord {
  id: string;
  key: string;
  subject: string | null;
  route: string;
  format: string;
  ip: string;
  path: string;
  received_at: Date;
  fields: unknown;
  status: InboxStatus;
  attempts: number;
  last_error: string | null;
  next_attempt_at: Date;
  delivered_at?: Date | null;
  outcome?: CommitOutcome | null;
  previous?: JournalRecord | null;
  superseded?: boolean;
}

function rowOf(record: RowRecord): InboxRow {
  return {
    // bigserial comes as text; ids stay far below 2^53.
    id: Number(record.id),
    key: record.key,
    subject: record.subject,
    route: record.route,
    format: record.format,
    ip: record.ip,
    path: record.path,
    receivedAt: record.received_at,
    // A json column comes parsed; the inbox hands the text on as it was stored.
    fields: JSON.stringify(record.fields),
    status: record.status,
    attempts: record.attempts,
    lastError: record.last_error,
    nextAttemptAt: record.next_attempt_at,
    deliveredAt: record.delivered_at ?? null,
    outcome: record.outcome ?? null,
  };
}

/** Taken after the row: a failed delivery rolls back to it, keeping the row locked. */
const SAVEPOINT = 'impact_postbacks_row';
/** How long arrivals gather before one NOTIFY tells the other instances of them, in ms. */
const ANNOUNCE_MS = 5;

/** What a row's claim needs of its inbox besides its connection. */
interface RowClaimParts {
  readonly counter: AttemptCounter;
  /**
   * Records a failed attempt: `$1` the row, `$2` the error, `$3` the backoff in ms or null, `$4`
   * the attempt. `held` in the row's transaction; `late` through another connection, once it
   * is over.
   */
  readonly failedSql: { readonly held: string; readonly late: string };
  run(text: string, values: unknown[]): Promise<PgQueryResult>;
}

/**
 * A row's claim: a transaction like a direct claim's, whose commit also marks the row
 * delivered. Its attempt is counted as it begins (`start`), through another connection, so that
 * it counts however the delivery ends. A failure is rolled back and recorded as one step
 * (`release` only notes why): were the row's lock let go first, another worker could take the
 * row before its retry is put off. Where the transaction is over already (its commit failed, or
 * listeners ran past the timeout), the failure is recorded through another connection, unless a
 * later attempt's end was recorded since.
 */
class PostgresInboxClaim<C> extends PostgresClaim<C> implements InboxClaim<C> {
  private releasedFor: 'failed' | 'timeout' = 'failed';
  /** The commit failed while its transaction was still there: it is back at the row's savepoint. */
  private backAtRow = false;
  private started = false;

  constructor(
    connection: Connection,
    writes: CommitWrites,
    previous: JournalRecord | null,
    readonly row: InboxRow,
    readonly superseded: boolean,
    /** This attempt's number once started; until then, the attempts begun before it. */
    private readonly attempt: { number: number },
    private readonly parts: RowClaimParts,
  ) {
    super(connection, writes, row.subject, previous);
  }

  async start(): Promise<void> {
    this.attempt.number = await this.parts.counter.count(this.row.id, this.row.attempts);
    this.started = true;
  }

  override release(reason: 'failed' | 'timeout'): Promise<void> {
    this.releasedFor = reason;
    return Promise.resolve();
  }

  /**
   * The router closes, or the attempt could not be counted: the row's transaction ends (rolled
   * back), and an attempt it began is counted no more (first, while the row is still held).
   */
  async giveBack(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    try {
      if (this.started) await this.parts.counter.uncount(this.row.id, this.attempt.number);
    } catch {
      // The attempt stays counted: one attempt fewer for the row.
    } finally {
      this.connection.terminate();
    }
  }

  /**
   * A statement of the commit failed (the listeners' transaction had failed, or a deferred
   * constraint): the transaction is still there, so it goes back to the row's savepoint and the
   * row stays locked until the failure is recorded. A COMMIT that failed ended it: closed.
   */
  protected override async afterFailedCommit(): Promise<void> {
    try {
      await this.connection.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
      this.backAtRow = true;
    } catch {
      this.connection.close();
    }
  }

  async recordFailure(error: string, retryAfterMs: number | null): Promise<boolean> {
    const values = [this.row.id, error, retryAfterMs, this.attempt.number];
    if (this.releasedFor === 'timeout' && !this.finished) {
      // Listeners may still use the connection: it is ended, not rolled back and reused. The
      // failure is recorded through another one, whose update queues on the row's lock and so
      // mostly comes before any other worker's take of the row once the end lets the lock go;
      // one that comes after only misses the backoff (the attempt counted as it began).
      this.finished = true;
      // Settled at once: ending the connection below must not leave its failure unhandled.
      const recorded = this.parts.run(this.parts.failedSql.late, values).then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
      this.connection.terminate();
      const outcome = await recorded;
      if ('error' in outcome) throw outcome.error;
      return (outcome.result.rowCount ?? 0) > 0;
    }
    if (this.finished && !this.backAtRow) {
      // The commit failed and its transaction, with the row's lock, is gone.
      return ((await this.parts.run(this.parts.failedSql.late, values)).rowCount ?? 0) > 0;
    }
    this.finished = true;
    const backAtRow = this.backAtRow;
    // Whatever happens below, the connection is given back or closed: a later call goes the late way.
    this.backAtRow = false;
    try {
      if (!backAtRow) await this.connection.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
      const { rowCount } = await this.connection.query(this.parts.failedSql.held, values);
      await this.connection.query('COMMIT');
      this.connection.giveBack();
      return (rowCount ?? 0) > 0;
    } catch (cause) {
      this.connection.close();
      throw cause;
    }
  }
}

/**
 * PostgresStore's inbox: a table beside its keys and journal. A postback and its dedupe key are
 * stored by one statement. A worker takes a row in a transaction (`FOR UPDATE SKIP LOCKED`, so
 * instances share the work and never take one row twice), with the subject's advisory lock and
 * journal state as a direct claim has them; listeners write in that transaction, and its commit
 * marks the row delivered with them. A process that dies lets its rows go at once: PostgreSQL
 * rolls its transactions back.
 *
 * Workers learn of new rows by LISTEN/NOTIFY on one pooled connection each, so that a row is
 * taken as soon as it is stored, and poll as well (for retries coming due, and in case that
 * connection is lost).
 */
export class PostgresInbox<T> implements StoreInbox<T> {
  private readonly sql;
  private readonly wakers = new Set<() => void>();
  /** The listening connection, with what closes it. */
  private listener: Promise<{ readonly close: () => void }> | null = null;
  private closed = false;
  /** A NOTIFY is due to be sent. */
  private announcing = false;
  private readonly counter: AttemptCounter;

  constructor(private readonly parts: PostgresParts) {
    const { inbox, inboxAttempts, inboxAdd, inboxNext, channel } = parts.objects;
    this.counter = new AttemptCounter(() => parts.connect(), inboxAttempts);
    // A row's attempts begun: the greater of those whose end it recorded and those counted as they began.
    const columns = `r.id, r.key, r.subject, r.route, r.format, r.ip, r.path, r.received_at, r.fields, r.status,
      greatest(r.attempts, coalesce(a.started, 0)) AS attempts, r.last_error, r.next_attempt_at, r.delivered_at, r.outcome`;
    const failed = (unlessLate: string): string => `UPDATE ${inbox} SET attempts = $4, last_error = $2,
        status = CASE WHEN $3::bigint IS NULL THEN 'dead' ELSE 'retrying' END,
        next_attempt_at = coalesce(now() + $3::bigint * interval '1 millisecond', next_attempt_at)
        WHERE id = $1 AND status IN ('pending', 'retrying') ${unlessLate}`;
    const reset = (where: string): string => `WITH reset AS (
        UPDATE ${inbox} SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
        WHERE ${where} RETURNING id),
      forgotten AS (DELETE FROM ${inboxAttempts} a USING reset WHERE a.id = reset.id)
      SELECT count(*)::int AS count FROM reset`;
    this.sql = {
      add: `SELECT ${inboxAdd}($1, $2, $3, $4, $5, $6, $7, $8, $9) AS id`,
      // BEGIN, the row taken and the savepoint after it, in one query string, one round trip.
      next: `BEGIN ISOLATION LEVEL READ COMMITTED;
        SELECT * FROM ${inboxNext}(${sqlLiteral(parts.lockTimeoutMs)});
        SAVEPOINT ${SAVEPOINT}`,
      // The row's attempts counted on it, and their count apart no longer needed.
      delivered: (id: number, attempt: number, outcome: CommitOutcome) =>
        `UPDATE ${inbox} SET status = 'delivered', attempts = ${sqlLiteral(attempt)}, delivered_at = now(),
          last_error = NULL, outcome = ${sqlLiteral(outcome)} WHERE id = ${sqlLiteral(id)};
        DELETE FROM ${inboxAttempts} WHERE id = ${sqlLiteral(id)}`,
      failed: {
        held: failed(''),
        // Through another connection, the row's transaction over: too late once another attempt
        // began since, or the row was delivered or retried by hand (either forgets its count).
        late: failed(`AND EXISTS (SELECT 1 FROM ${inboxAttempts} a WHERE a.id = $1 AND a.started = $4)`),
      },
      counts: `SELECT status, count(*)::int AS count FROM ${inbox} GROUP BY status`,
      oldest: `SELECT (extract(epoch FROM now() - min(received_at)) * 1000)::float8 AS age
        FROM ${inbox} WHERE status IN ('pending', 'retrying')`,
      list: `SELECT ${columns} FROM ${inbox} r LEFT JOIN ${inboxAttempts} a ON a.id = r.id
        WHERE $1::text IS NULL OR r.status = $1 ORDER BY r.id DESC LIMIT $2`,
      retryOne: reset(`id = $1 AND status <> 'delivered'`),
      retryDead: reset(`status = 'dead'`),
      notify: `SELECT pg_notify('${channel}', '')`,
      listen: `LISTEN "${channel}"`,
    };
  }

  async add(entry: InboxEntry, history?: NewHistoryEntry): Promise<'stored' | 'duplicate'> {
    // With its history entry: in the same statement, written only when the row was stored.
    const sql =
      history === undefined
        ? this.sql.add
        : `WITH added AS (${this.sql.add}),
             logged AS (${this.parts.writes.writeHistory(history, '(SELECT id FROM added) IS NOT NULL')})
           SELECT id FROM added`;
    const { rows } = await this.parts.run(sql, [
      entry.key,
      entry.subject,
      entry.route,
      entry.format,
      entry.ip,
      entry.path,
      entry.receivedAt,
      entry.fields,
      this.parts.retentionMs,
    ]);
    if ((rows[0] as { id: string | null } | undefined)?.id == null) return 'duplicate';
    this.announce();
    return 'stored';
  }

  /**
   * Tells every instance's worker that rows were stored: one NOTIFY for the arrivals of the
   * next few milliseconds, on its own. A NOTIFY in each arrival's transaction serialised their
   * commits (PostgreSQL takes a database-wide lock to queue a notification at commit). This
   * process's own worker is woken by the router at once; a lost notification is made up for by
   * the workers' poll.
   */
  private announce(): void {
    if (this.announcing) return;
    this.announcing = true;
    setTimeout(() => {
      this.announcing = false;
      this.parts.run(this.sql.notify).catch(() => undefined);
    }, ANNOUNCE_MS).unref();
  }

  async next(): Promise<InboxClaim<T> | null> {
    // Before the row's connection, never while holding it (see AttemptCounter).
    await this.counter.ready();
    const connection = await this.parts.connect();
    try {
      const [, taken] = await connection.queryAll(this.sql.next);
      const found = taken?.rows[0] as RowRecord | undefined;
      if (found === undefined) {
        await connection.query('ROLLBACK');
        connection.giveBack();
        return null;
      }
      const row = rowOf(found);
      const attempt = { number: row.attempts };
      const writes = {
        ...this.parts.writes,
        first: (outcome: CommitOutcome) => this.sql.delivered(row.id, attempt.number, outcome),
      };
      const previous = found.previous ?? null;
      // Superseded by a later row delivered, or by reconciliation reading impact.com after it arrived.
      const superseded =
        found.superseded === true || (row.route === 'actions' && readByReconciliationSince(previous, row.receivedAt));
      return new PostgresInboxClaim<T>(connection, writes, previous, row, superseded, attempt, {
        counter: this.counter,
        failedSql: this.sql.failed,
        run: (text, values) => this.parts.run(text, values),
      });
    } catch (error) {
      // Another process's claim held the subject for lockTimeoutMs: the row waits for the next round.
      if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) {
        await connection.rollBack();
        return null;
      }
      connection.close();
      throw error;
    }
  }

  waitForWork(ms: number): Promise<void> {
    if (!this.closed) this.listen();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  async stats(): Promise<InboxStats> {
    const counts = { pending: 0, retrying: 0, dead: 0, delivered: 0 };
    const { rows } = await this.parts.run(this.sql.counts);
    for (const row of rows as { status: InboxStatus; count: number }[]) counts[row.status] = row.count;
    const oldest = (await this.parts.run(this.sql.oldest)).rows[0] as { age: number | null } | undefined;
    return { ...counts, oldestPendingAgeMs: oldest?.age == null ? null : Math.round(oldest.age) };
  }

  async list(query: InboxQuery = {}): Promise<InboxRow[]> {
    const { rows } = await this.parts.run(this.sql.list, [query.status ?? null, query.limit ?? 50]);
    return (rows as RowRecord[]).map(rowOf);
  }

  async retry(target: number | { readonly status: 'dead' }): Promise<number> {
    const { rows } =
      typeof target === 'number'
        ? await this.parts.run(this.sql.retryOne, [target])
        : await this.parts.run(this.sql.retryDead);
    const count = (rows[0] as { count: number } | undefined)?.count ?? 0;
    if (count > 0) await this.parts.run(this.sql.notify);
    return count;
  }

  /** Stops listening and counting, closing their connections, and ends every wait at once. */
  async close(): Promise<void> {
    this.closed = true;
    await this.counter.close();
    const listener = this.listener;
    if (listener !== null) (await listener.catch(() => null))?.close();
    for (const waker of [...this.wakers]) waker();
  }

  /** Opens the listening connection unless it is open; a failure is tried again on the next wait. */
  private listen(): void {
    if (this.listener !== null) return;
    const wake = (): void => {
      for (const waker of [...this.wakers]) waker();
    };
    const opened = (async () => {
      const client = await this.parts.connectListener();
      let released = false;
      const lost = (): void => {
        if (this.listener === opened) this.listener = null;
        if (released) return;
        released = true;
        client.removeListener('notification', wake);
        client.release(true);
      };
      client.on('notification', wake);
      client.on('error', lost);
      try {
        await client.query(this.sql.listen);
      } catch (error) {
        lost();
        throw error;
      }
      return { close: lost };
    })();
    this.listener = opened;
    opened.catch(() => {
      if (this.listener === opened) this.listener = null;
    });
  }
}
