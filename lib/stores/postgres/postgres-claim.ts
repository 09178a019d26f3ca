import type { PostgresObjects } from './postgres-schema';
import type { NewHistoryEntry } from '../../history/history-entry';
import type { CommitOutcome, JournalRecord, StoreClaim } from '../store';

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
  /** The server process of the connection (node-postgres sets it once connected). */
  readonly processID?: number | null;
  /** Back to the pool; with an error (or true), the connection is closed instead. */
  release(error?: Error | boolean): void;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'notification', listener: () => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'notification', listener: () => void): unknown;
}

/** The part of a node-postgres Pool the store uses; any pg 8 Pool fits. */
export interface PgPool {
  connect(): Promise<PgPoolClient>;
  end(): Promise<void>;
  /** pg's Pool emits 'connect' with each new client (a pool without it is used as it is). */
  on?(event: 'connect', listener: (client: PgPoolClient) => void): unknown;
}

/**
 * Gives every client the pool opens an 'error' listener for its whole life. pg emits a server's
 * error that comes with no query running (a restart's or pg_terminate_backend's FATAL) as an
 * 'error' event, and one nobody listens for ends the process; pg-pool takes its own listener
 * off a client it hands out, and the FATAL can be read in the same packet as the connection's
 * readiness, before whoever asked for the client has it (brianc/node-postgres#2439, #2762).
 * Queries on such a client still fail, and the pool drops it once it comes back.
 */
export function keepClientErrorsFromEndingTheProcess(pool: PgPool): void {
  // Once per pool, however many stores share it.
  if (guardedPools.has(pool)) return;
  guardedPools.add(pool);
  pool.on?.('connect', (client) => {
    client.on('error', ignoreError);
  });
}

const guardedPools = new WeakSet<PgPool>();

function ignoreError(): void {
  // Reported where it matters: the failed query, or the pool's own 'error' event.
}

/**
 * A client held for one claim. Queries the store itself makes are bounded: one that has not
 * answered in time closes the connection (PostgreSQL then rolls the transaction back).
 */
export class Connection {
  private released = false;

  constructor(
    readonly client: PgPoolClient,
    private readonly boundMs: number,
    /** Ends a server process through another connection, and waits until it is gone. */
    private readonly terminateBackend?: (pid: number) => Promise<void>,
  ) {
    // A connection lost while held fails its queries; its 'error' event must not end the process.
    client.on('error', this.ignore);
  }

  /** Several statements in one query string (the simple protocol): one round trip, a result each. */
  async queryAll(text: string): Promise<PgQueryResult[]> {
    const results = (await this.query(text)) as PgQueryResult | PgQueryResult[];
    return Array.isArray(results) ? results : [results];
  }

  async query(text: string, values?: unknown[]): Promise<PgQueryResult> {
    // Once back in the pool the client may be another's: a statement sent now would run in its
    // transaction (a COMMIT would end it).
    if (this.released) throw new Error('the connection was given back already');
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

  /** Rolls its transaction back and goes back to the pool; closed instead when the rollback fails. */
  async rollBack(): Promise<void> {
    try {
      await this.query('ROLLBACK');
      this.giveBack();
    } catch {
      this.close();
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

  /**
   * Closes the connection and has its server process ended. A server process running a long
   * query goes on after its client is gone, holding its transaction's locks (the subject's, an
   * inbox row's) until the query ends; ending it lets them go now. Nobody waits for it (it needs a
   * connection of the pool's): closing alone is what happens should it fail.
   */
  terminate(): void {
    const pid = this.client.processID;
    this.close();
    if (typeof pid !== 'number' || this.terminateBackend === undefined) return;
    this.terminateBackend(pid).catch(() => undefined);
  }

  private end(error: Error | undefined): void {
    if (this.released) return;
    this.released = true;
    this.client.removeListener('error', this.ignore);
    this.client.release(error);
  }

  private readonly ignore = (): void => undefined;
}

/**
 * What a commit writes besides the claim's own rows: the journal record, and more for the
 * inbox. Statements with their values written in, sent with the COMMIT as one query.
 */
export interface CommitWrites {
  /** Upserts a subject's journal record. */
  readonly writeRecord: (subject: string, record: JournalRecord) => string;
  /** A statement to run first, such as marking an inbox row delivered. */
  readonly first?: (outcome: CommitOutcome) => string;
  /** Writes a postback's history entry; with `where`, only when that condition holds. */
  readonly writeHistory: (entry: NewHistoryEntry, where?: string) => string;
}

/** What PostgresStore shares with its inbox. */
export interface PostgresParts {
  readonly objects: PostgresObjects;
  readonly lockTimeoutMs: number;
  readonly retentionMs: number;
  readonly writes: CommitWrites;
  /** A connection held from the pool, the tables made sure of first. */
  connect(): Promise<Connection>;
  /** One statement on a pooled connection, outside any transaction. */
  run(text: string, values?: unknown[]): Promise<PgQueryResult>;
  /** A client of the pool's, to keep for LISTEN. */
  connectListener(): Promise<PgPoolClient>;
}

/** Ends a server process and waits up to a second for it to be gone (PostgreSQL 14 and later wait). */
export const TERMINATE_BACKEND_SQL = 'SELECT pg_terminate_backend($1::int, 1000)';

export class PostgresClaim<C> implements StoreClaim<C> {
  readonly transactional = true;
  /** Committed or released (or being so): its transaction is over, or about to be. */
  protected finished = false;

  constructor(
    protected readonly connection: Connection,
    private readonly writes: CommitWrites,
    private readonly subject: string | null,
    readonly previous: JournalRecord | null,
  ) {}

  get transaction(): C {
    return this.connection.client as unknown as C;
  }

  async commit(record: JournalRecord | null, outcome: CommitOutcome, entry?: NewHistoryEntry): Promise<void> {
    this.finish();
    const { writeRecord, first, writeHistory } = this.writes;
    try {
      // Deferred constraints (the listeners' own) are checked first, so that one that fails does
      // so before COMMIT, while the transaction is still there (an inbox row stays locked).
      const statements: string[] = ['SET CONSTRAINTS ALL IMMEDIATE'];
      if (first !== undefined) statements.push(first(outcome));
      if (record !== null && this.subject !== null) statements.push(writeRecord(this.subject, record));
      if (entry !== undefined) statements.push(writeHistory(entry));
      statements.push('COMMIT');
      // One round trip: a statement that fails stops the rest, COMMIT included. A transaction in
      // which a statement failed (a listener may have caught that error and carried on) fails at
      // the first of them: PostgreSQL would answer a COMMIT there with ROLLBACK, not an error.
      // Built in here: should building one throw, the connection is closed all the same.
      await this.connection.queryAll(statements.join(';\n'));
    } catch (error) {
      await this.afterFailedCommit();
      throw error;
    }
    this.connection.giveBack();
  }

  /** The transaction could not commit: the connection is closed, and PostgreSQL rolls it back. */
  protected afterFailedCommit(): Promise<void> {
    this.connection.close();
    return Promise.resolve();
  }

  async release(reason: 'failed' | 'timeout'): Promise<void> {
    this.finish();
    // Listeners past their timeout may still be using the client: it must never go back to the
    // pool, where their late writes would land in another postback's transaction. Its server
    // process is ended too, should a listener's query still run there.
    if (reason === 'timeout') {
      this.connection.terminate();
      return;
    }
    await this.connection.rollBack();
  }

  protected finish(): void {
    if (this.finished) throw new Error('this claim was already committed or released');
    this.finished = true;
  }
}
