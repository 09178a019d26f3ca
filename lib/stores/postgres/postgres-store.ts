import { PostgresHistory } from './postgres-history';
import { booleanOption, loadOptionalModule, positiveInteger } from '../optional-module';
import {
  checkNames,
  migrationLockSql,
  missingObjectsSql,
  objectsOf,
  historyPresentSql,
  historySchemaSql,
  schemaPresentSql,
  schemaSql,
  type PostgresNames,
} from './postgres-schema';
import {
  Connection,
  PostgresClaim,
  TERMINATE_BACKEND_SQL,
  keepClientErrorsFromEndingTheProcess,
  type CommitWrites,
  type PgClient,
  type PgPool,
  type PgQueryResult,
} from './postgres-claim';
import { PostgresInbox } from './postgres-inbox';
import { sqlLiteral } from './postgres-literal';
import type { BeginResult, InboxStore, JournalReadResult, JournalRecord } from '../store';

export type { PgClient, PgPool, PgPoolClient, PgQueryResult } from './postgres-claim';

interface StoreSettings {
  /** The schema of the store's tables. Default `public`. */
  readonly schema?: string;
  /** Prefix of the store's table names. Default `impact_postbacks_`. */
  readonly tablePrefix?: string;
  /** How long a handled key and a journal record are kept, in ms. Default 90 days. */
  readonly retentionMs?: number;
  /** How long a postback waits for another holding the same key or action, in ms. Default 5,000. */
  readonly lockTimeoutMs?: number;
  /** How often expired keys and records are deleted, in ms. Default 1 hour. */
  readonly pruneIntervalMs?: number;
  /**
   * Whether the store creates its tables and functions when they are missing. Default true. With
   * false (for tools that only look, such as the CLI's `inbox` and `reconcile`) a missing one
   * fails every call, naming it and `impact-postbacks migrate`, nothing is created, and expired
   * rows are not pruned.
   */
  readonly create?: boolean;
}

export type PostgresStoreOptions =
  | (StoreSettings & { readonly connectionString: string; readonly pool?: never })
  | (StoreSettings & { readonly pool: PgPool; readonly connectionString?: never });

type PoolConstructor = new (config: Record<string, unknown>) => PgPool & {
  on(event: 'error', listener: (error: Error) => void): unknown;
};

const DAY = 24 * 60 * 60 * 1000;
const LOCK_NOT_AVAILABLE = '55P03';
const PRUNE_BATCH = 10_000;

/**
 * A store in PostgreSQL whose claims are transactions the listeners write in. A claim opens a
 * READ COMMITTED transaction on a pooled connection, takes a transaction-scoped advisory lock on
 * the subject (the action or inquiry), inserts the dedupe key and reads the journal, in one
 * round trip; listeners get the connection as `ctx.transaction`; a commit writes the journal
 * record and commits all of it together. A process that dies holds nothing: PostgreSQL rolls its
 * transaction back, and the lock and key go with it.
 *
 * Any number of processes share one database. A copy of a postback, or another postback of the
 * same action, waits for the first to commit or roll back (up to lockTimeoutMs, then 503).
 * Tables are created on first use unless they exist (`impact-postbacks migrate` prints them).
 * `T` is the type of `ctx.transaction`: give pg's `PoolClient` to see its full type.
 */
export class PostgresStore<T extends PgClient = PgClient> implements InboxStore<T> {
  readonly schema: string;
  readonly tablePrefix: string;
  readonly retentionMs: number;
  readonly lockTimeoutMs: number;
  /** The inbox for delivery: 'inbox' (see PostgresInbox). */
  readonly inbox: PostgresInbox<T>;
  /** History (option `history` of the router), in a table beside the store's. */
  readonly history: PostgresHistory;
  private readonly names: PostgresNames;
  private readonly pool: PgPool;
  private readonly ownsPool: boolean;
  private readonly sql: {
    readonly begin: (key: string, subject: string | null) => string;
    readonly readJournal: string;
    readonly prune: readonly string[];
  };
  private readonly writes: CommitWrites;
  /** The longest the store waits on one of its own statements: two lock waits, and a margin. */
  private readonly boundMs: number;
  private schemaReady: Promise<void> | null = null;
  private readonly create: boolean;
  private pruneTimer: NodeJS.Timeout | undefined;
  private closed: Promise<void> | null = null;

  constructor(options: PostgresStoreOptions) {
    this.names = checkNames(options.schema ?? 'public', options.tablePrefix ?? 'impact_postbacks_');
    this.schema = this.names.schema;
    this.tablePrefix = this.names.tablePrefix;
    this.retentionMs = positiveInteger('retentionMs', options.retentionMs ?? 90 * DAY);
    this.lockTimeoutMs = positiveInteger('lockTimeoutMs', options.lockTimeoutMs ?? 5000);
    const pruneIntervalMs = positiveInteger('pruneIntervalMs', options.pruneIntervalMs ?? 60 * 60 * 1000);
    this.boundMs = 2 * this.lockTimeoutMs + 5000;
    this.create = booleanOption('create', options.create, true);
    if (options.pool !== undefined) {
      if (typeof (options.pool as Partial<PgPool>).connect !== 'function') {
        throw new TypeError('option pool must be a node-postgres Pool (new pg.Pool(...))');
      }
      this.pool = options.pool;
      this.ownsPool = false;
    } else if (typeof options.connectionString === 'string' && options.connectionString !== '') {
      const pg = loadOptionalModule('pg', 'PostgresStore', 'pg') as { Pool: PoolConstructor };
      const pool = new pg.Pool({ connectionString: options.connectionString, connectionTimeoutMillis: 5000 });
      // An idle connection that breaks (a PostgreSQL restart) is dropped by the pool; the event
      // must not end the process. The next claim connects again or answers 503.
      pool.on('error', () => undefined);
      this.pool = pool;
      this.ownsPool = true;
    } else {
      throw new TypeError(
        'PostgresStore needs option connectionString (such as "postgres://user@host:5432/db") or option pool',
      );
    }
    keepClientErrorsFromEndingTheProcess(this.pool);
    const objects = objectsOf(this.names);
    const { keys, journal, begin, inbox, inboxAttempts } = objects;
    const expired = (table: string, condition: string): string =>
      `DELETE FROM ${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${table} WHERE ${condition} LIMIT ${PRUNE_BATCH}))`;
    this.sql = {
      // BEGIN and the claim in one query string, one round trip.
      begin: (key: string, subject: string | null) =>
        `BEGIN ISOLATION LEVEL READ COMMITTED;\nSELECT claimed, previous FROM ${begin}(${sqlLiteral(key)}, ${sqlLiteral(subject)}, ${this.lockTimeoutMs}, ${this.retentionMs})`,
      readJournal: `SELECT subject, state FROM ${journal} WHERE subject = ANY ($1) AND expires_at > now()`,
      prune: [
        expired(keys, 'expires_at <= now()'),
        expired(journal, 'expires_at <= now()'),
        expired(
          inbox,
          `status = 'delivered' AND delivered_at <= now() - ${this.retentionMs} * interval '1 millisecond'`,
        ),
        // Counts of rows no longer there: a delivery removes its row's, save one counted late.
        expired(inboxAttempts, `NOT EXISTS (SELECT 1 FROM ${inbox} r WHERE r.id = ${inboxAttempts}.id)`),
      ],
    };
    const retentionMs = this.retentionMs;
    this.writes = {
      writeRecord: (subject, record) => `INSERT INTO ${journal} (subject, state, updated_at, expires_at)
        VALUES (${sqlLiteral(subject)}, ${sqlLiteral(JSON.stringify(record))}, now(),
          now() + ${retentionMs} * interval '1 millisecond')
        ON CONFLICT (subject) DO UPDATE SET state = EXCLUDED.state, updated_at = now(), expires_at = EXCLUDED.expires_at`,
      writeHistory: (entry, where) => this.history.insertSql(entry, where),
    };
    this.inbox = new PostgresInbox<T>({
      objects,
      lockTimeoutMs: this.lockTimeoutMs,
      retentionMs: this.retentionMs,
      writes: this.writes,
      connect: () => this.connect(),
      run: (text, values) => this.run(text, values),
      connectListener: async () => {
        await this.ensureSchema();
        return this.pool.connect();
      },
    });
    this.history = new PostgresHistory(
      {
        name: objects.history,
        presentSql: historyPresentSql(this.names),
        createSql: this.create ? historySchemaSql(this.names) : null,
      },
      (text, values) => this.run(text, values),
    );
    // A store that only looks (create: false) deletes nothing either.
    if (this.create) {
      this.pruneTimer = setInterval(() => {
        this.prune().catch(() => undefined);
      }, pruneIntervalMs);
      this.pruneTimer.unref();
    }
  }

  async begin(key: string, subject: string | null): Promise<BeginResult<T>> {
    const connection = await this.connect();
    try {
      const [, claimed] = await connection.queryAll(this.sql.begin(key, subject));
      const row = claimed?.rows[0] as { claimed: boolean; previous: JournalRecord | null } | undefined;
      if (row?.claimed === true) {
        return new PostgresClaim<T>(connection, this.writes, subject, row.previous);
      }
      await connection.query('ROLLBACK');
      connection.giveBack();
      return 'handled';
    } catch (error) {
      // Waited lockTimeoutMs for a copy or another postback of the action: the sender retries.
      if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) {
        await connection.rollBack();
        return 'in-flight';
      }
      connection.close();
      throw error;
    }
  }

  async readJournal(subjects: readonly string[]): Promise<JournalReadResult> {
    if (subjects.length === 0) return [];
    const { rows } = await this.run(this.sql.readJournal, [subjects]);
    const records = new Map<string, JournalRecord>();
    for (const row of rows as { subject: string; state: JournalRecord | null }[]) {
      if (row.state !== null) records.set(row.subject, row.state);
    }
    return subjects.map((subject) => records.get(subject) ?? null);
  }

  /** Deletes expired keys and journal records, and rows delivered past the retention, in batches; returns how many. */
  async prune(): Promise<number> {
    let deleted = 0;
    for (const statement of this.sql.prune) {
      for (;;) {
        const { rowCount } = await this.run(statement);
        deleted += rowCount ?? 0;
        if ((rowCount ?? 0) < PRUNE_BATCH) break;
      }
    }
    return deleted;
  }

  /**
   * Stops pruning and the inbox's listening, and ends the pool the store created (never one it
   * was given); twice is harmless.
   */
  close(): Promise<void> {
    clearInterval(this.pruneTimer);
    this.closed ??= (async () => {
      // History waits for PostgreSQL no longer than a statement may take: a database that is
      // down must not keep the process from ending. The bound's timer goes with the close.
      let bound: NodeJS.Timeout | undefined;
      const historyWritten = Promise.race([
        this.history.flush(),
        new Promise<void>((resolve) => {
          bound = setTimeout(resolve, this.boundMs);
        }),
      ]);
      try {
        await Promise.all([this.inbox.close(), historyWritten]);
      } finally {
        clearTimeout(bound);
      }
      if (this.ownsPool) await this.pool.end();
    })();
    return this.closed;
  }

  private async connect(): Promise<Connection> {
    await this.ensureSchema();
    return new Connection(await this.pool.connect(), this.boundMs, async (pid) => {
      await this.run(TERMINATE_BACKEND_SQL, [pid]);
    });
  }

  private async run(text: string, values?: unknown[]): Promise<PgQueryResult> {
    await this.ensureSchema();
    return runOnce(this.pool, this.boundMs, text, values);
  }

  /**
   * Creates the tables and the claim function unless this version's all exist (a user without
   * the right to create them can have them made by `impact-postbacks migrate`). Concurrent
   * starts are serialised by an advisory lock. A failure (PostgreSQL down) is tried again on
   * the next claim.
   */
  private ensureSchema(): Promise<void> {
    const ready = (this.schemaReady ??= (
      this.create
        ? applySchema(this.pool, this.names, this.boundMs)
        : requireSchema(this.pool, this.names, this.boundMs)
    ).then(
      // Apart from the store's own objects (see PostgresHistory): commits write entries once it is there.
      () => this.history.prepare((text, values) => runOnce(this.pool, this.boundMs, text, values)),
      (error: unknown) => {
        this.schemaReady = null;
        throw error;
      },
    ));
    return ready;
  }
}

/** One statement on a connection of the pool's, given back after it. */
async function runOnce(pool: PgPool, boundMs: number, text: string, values?: unknown[]): Promise<PgQueryResult> {
  const connection = new Connection(await pool.connect(), boundMs);
  try {
    const result = await connection.query(text, values);
    connection.giveBack();
    return result;
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** Throws unless the store's tables and functions are all in place, naming those missing. */
async function requireSchema(pool: PgPool, names: PostgresNames, boundMs: number): Promise<void> {
  const connection = new Connection(await pool.connect(), boundMs);
  let missing: string[];
  try {
    const { rows } = await connection.query(missingObjectsSql(names));
    missing = (rows as { name: string }[]).map((row) => row.name.replaceAll('"', ''));
    connection.giveBack();
  } catch (error) {
    connection.close();
    throw error;
  }
  if (missing.length > 0) {
    const flags = `${names.schema === 'public' ? '' : ` --schema ${names.schema}`}${names.tablePrefix === 'impact_postbacks_' ? '' : ` --table-prefix ${names.tablePrefix}`}`;
    throw new Error(
      `PostgresStore: the database has no ${missing.join(', ')}; create them with: impact-postbacks migrate${flags}`,
    );
  }
}

/**
 * Applies the DDL through the pool unless it is in place; used by the store and by `migrate`.
 * Checked again under the migration lock: an instance that waited for another's migration must
 * not run the DDL again, as CREATE INDEX locks its table against the claims running by then.
 * The lock is a session lock and the second check its own transaction: a transaction that began
 * before the other's DDL committed can still miss it in its catalog lookups.
 */
export async function applySchema(pool: PgPool, names: PostgresNames, boundMs: number): Promise<'created' | 'present'> {
  const connection = new Connection(await pool.connect(), boundMs);
  const present = async (): Promise<boolean> => {
    const { rows } = await connection.query(schemaPresentSql(names));
    return (rows[0] as { ready?: unknown } | undefined)?.ready === true;
  };
  try {
    let result: 'created' | 'present' = 'present';
    if (!(await present())) {
      await connection.query(migrationLockSql(names).lock);
      if (!(await present())) {
        // Several statements in one query string run as one transaction.
        await connection.query(schemaSql(names));
        result = 'created';
      }
      await connection.query(migrationLockSql(names).unlock);
    }
    connection.giveBack();
    return result;
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** Makes the history table and its indexes (or adds the columns an earlier version's lacks) unless they are there; used by `migrate`. */
export async function applyHistorySchema(pool: PgPool, names: PostgresNames): Promise<'created' | 'present'> {
  const client = await pool.connect();
  try {
    const { rows } = await client.query(historyPresentSql(names));
    if ((rows[0] as { current?: unknown } | undefined)?.current === true) return 'present';
    await client.query(historySchemaSql(names));
    return 'created';
  } finally {
    client.release();
  }
}
