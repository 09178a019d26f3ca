import { loadOptionalModule, positiveInteger } from './optional-module';
import {
  checkNames,
  migrationLockSql,
  objectsOf,
  schemaPresentSql,
  schemaSql,
  type PostgresNames,
} from './postgres-schema';
import type { BeginResult, JournalRecord, PostbackStore, StoreClaim } from './store';

/** What a query answers, as node-postgres gives it. */
export interface PgQueryResult {
  readonly rows: readonly unknown[];
  readonly rowCount: number | null;
  readonly command: string;
}

/**
 * The part of a node-postgres client this package uses; listeners get the whole client. Pass
 * pg's own type to the store to see it whole: `new PostgresStore<PoolClient>({ pool })`.
 */
export interface PgClient {
  query(text: string, values?: unknown[]): Promise<PgQueryResult>;
}

/** A client checked out of a pool, as node-postgres's pool hands it out. */
export interface PgPoolClient extends PgClient {
  /** Back to the pool; with an error (or true), the connection is closed instead. */
  release(error?: Error | boolean): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
}

/** The part of a node-postgres Pool the store uses; any pg 8 Pool fits. */
export interface PgPool {
  connect(): Promise<PgPoolClient>;
  end(): Promise<void>;
}

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
 * A client held for one claim. Queries the store itself makes are bounded: one that has not
 * answered in time closes the connection (PostgreSQL then rolls the transaction back).
 */
class Connection {
  private released = false;

  constructor(
    readonly client: PgPoolClient,
    private readonly boundMs: number,
  ) {
    // A connection lost while held fails its queries; its 'error' event must not end the process.
    client.on('error', this.ignore);
  }

  async query(text: string, values?: unknown[]): Promise<PgQueryResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`PostgreSQL did not answer within ${this.boundMs} ms`));
        this.close();
      }, this.boundMs);
    });
    try {
      return await Promise.race([this.client.query(text, values), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Back to the pool, its transaction ended. */
  giveBack(): void {
    this.end(undefined);
  }

  /** Closes the connection: whatever transaction it held is rolled back by PostgreSQL. */
  close(): void {
    this.end(new Error('closed by impact-postbacks'));
  }

  private end(error: Error | undefined): void {
    if (this.released) return;
    this.released = true;
    this.client.removeListener('error', this.ignore);
    this.client.release(error);
  }

  private readonly ignore = (): void => undefined;
}

class PostgresClaim<C> implements StoreClaim<C> {
  readonly transactional = true;
  private finished = false;

  constructor(
    private readonly connection: Connection,
    private readonly writeRecord: string,
    private readonly retentionMs: number,
    private readonly subject: string | null,
    readonly previous: JournalRecord | null,
  ) {}

  get transaction(): C {
    return this.connection.client as unknown as C;
  }

  async commit(record: JournalRecord | null): Promise<void> {
    this.finish();
    try {
      if (record !== null && this.subject !== null) {
        await this.connection.query(this.writeRecord, [this.subject, JSON.stringify(record), this.retentionMs]);
      }
      // PostgreSQL answers COMMIT with ROLLBACK, not an error, when a statement in the
      // transaction failed (a listener may have caught that error and carried on).
      const { command } = await this.connection.query('COMMIT');
      if (command !== 'COMMIT') {
        throw new Error(`PostgreSQL rolled the transaction back (${command}): a statement in it had failed`);
      }
    } catch (error) {
      this.connection.close();
      throw error;
    }
    this.connection.giveBack();
  }

  async release(reason: 'failed' | 'timeout'): Promise<void> {
    this.finish();
    // Listeners past their timeout may still be using the client: it must never go back to the
    // pool, where their late writes would land in another postback's transaction.
    if (reason === 'timeout') {
      this.connection.close();
      return;
    }
    try {
      await this.connection.query('ROLLBACK');
      this.connection.giveBack();
    } catch {
      this.connection.close();
    }
  }

  private finish(): void {
    if (this.finished) throw new Error('this claim was already committed or released');
    this.finished = true;
  }
}

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
export class PostgresStore<T extends PgClient = PgClient> implements PostbackStore<T> {
  readonly schema: string;
  readonly tablePrefix: string;
  readonly retentionMs: number;
  readonly lockTimeoutMs: number;
  private readonly names: PostgresNames;
  private readonly pool: PgPool;
  private readonly ownsPool: boolean;
  private readonly sql: { readonly begin: string; readonly writeRecord: string; readonly prune: readonly string[] };
  /** The longest the store waits on one of its own statements: two lock waits, and a margin. */
  private readonly boundMs: number;
  private schemaReady: Promise<void> | null = null;
  private readonly pruneTimer: NodeJS.Timeout;
  private closed: Promise<void> | null = null;

  constructor(options: PostgresStoreOptions) {
    this.names = checkNames(options.schema ?? 'public', options.tablePrefix ?? 'impact_postbacks_');
    this.schema = this.names.schema;
    this.tablePrefix = this.names.tablePrefix;
    this.retentionMs = positiveInteger('retentionMs', options.retentionMs ?? 90 * DAY);
    this.lockTimeoutMs = positiveInteger('lockTimeoutMs', options.lockTimeoutMs ?? 5000);
    const pruneIntervalMs = positiveInteger('pruneIntervalMs', options.pruneIntervalMs ?? 60 * 60 * 1000);
    this.boundMs = 2 * this.lockTimeoutMs + 5000;
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
    const { keys, journal, begin } = objectsOf(this.names);
    this.sql = {
      begin: `SELECT claimed, previous FROM ${begin}($1, $2, $3, $4)`,
      writeRecord: `INSERT INTO ${journal} (subject, state, updated_at, expires_at)
        VALUES ($1, $2, now(), now() + $3 * interval '1 millisecond')
        ON CONFLICT (subject) DO UPDATE SET state = EXCLUDED.state, updated_at = now(), expires_at = EXCLUDED.expires_at`,
      prune: [keys, journal].map(
        (table) =>
          `DELETE FROM ${table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ${table} WHERE expires_at <= now() LIMIT ${PRUNE_BATCH}))`,
      ),
    };
    this.pruneTimer = setInterval(() => {
      this.prune().catch(() => undefined);
    }, pruneIntervalMs);
    this.pruneTimer.unref();
  }

  async begin(key: string, subject: string | null): Promise<BeginResult<T>> {
    await this.ensureSchema();
    const connection = new Connection(await this.pool.connect(), this.boundMs);
    try {
      await connection.query('BEGIN ISOLATION LEVEL READ COMMITTED');
      const { rows } = await connection.query(this.sql.begin, [key, subject, this.lockTimeoutMs, this.retentionMs]);
      const row = rows[0] as { claimed: boolean; previous: JournalRecord | null } | undefined;
      if (row?.claimed === true) {
        return new PostgresClaim<T>(connection, this.sql.writeRecord, this.retentionMs, subject, row.previous);
      }
      await connection.query('ROLLBACK');
      connection.giveBack();
      return 'handled';
    } catch (error) {
      // Waited lockTimeoutMs for a copy or another postback of the action: the sender retries.
      if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) {
        await connection.query('ROLLBACK').then(
          () => {
            connection.giveBack();
          },
          () => {
            connection.close();
          },
        );
        return 'in-flight';
      }
      connection.close();
      throw error;
    }
  }

  /** Deletes expired keys and journal records now, in batches; returns how many. */
  async prune(): Promise<number> {
    await this.ensureSchema();
    let deleted = 0;
    for (const statement of this.sql.prune) {
      for (;;) {
        const { rowCount } = await this.pool.connect().then(async (client) => {
          const connection = new Connection(client, this.boundMs);
          try {
            const result = await connection.query(statement);
            connection.giveBack();
            return result;
          } catch (error) {
            connection.close();
            throw error;
          }
        });
        deleted += rowCount ?? 0;
        if ((rowCount ?? 0) < PRUNE_BATCH) break;
      }
    }
    return deleted;
  }

  /** Stops pruning and ends the pool the store created (never one it was given); twice is harmless. */
  close(): Promise<void> {
    clearInterval(this.pruneTimer);
    this.closed ??= this.ownsPool ? this.pool.end() : Promise.resolve();
    return this.closed;
  }

  /**
   * Creates the tables and the claim function unless this version's all exist (a user without
   * the right to create them can have them made by `impact-postbacks migrate`). Concurrent
   * starts are serialised by an advisory lock. A failure (PostgreSQL down) is tried again on
   * the next claim.
   */
  private ensureSchema(): Promise<void> {
    const ready = (this.schemaReady ??= applySchema(this.pool, this.names, this.boundMs).then(
      () => undefined,
      (error: unknown) => {
        this.schemaReady = null;
        throw error;
      },
    ));
    return ready;
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
