import { loadOptionalModule, positiveInteger } from './optional-module';
import type { ClaimResult, DedupeStore } from './store';

export interface SqliteStoreOptions {
  /** The database file; created if missing. `:memory:` works but is not durable. */
  readonly path: string;
  /** How long a handled key is kept, in ms. Default 90 days. */
  readonly retentionMs?: number;
  /** How long a claim holds before another process may take it, in ms. Default 5 minutes. */
  readonly leaseMs?: number;
  /** How often expired keys are deleted, in ms. Default 1 hour. */
  readonly pruneIntervalMs?: number;
}

interface Statement {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): unknown;
}

interface Database {
  pragma(source: string): unknown;
  exec(source: string): unknown;
  prepare(source: string): Statement;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): { immediate(...args: A): R };
  close(): unknown;
}

type DatabaseConstructor = new (path: string) => Database;

const IN_FLIGHT = 0;
const HANDLED = 1;
const DAY = 24 * 60 * 60 * 1000;

/**
 * A durable store in one SQLite file (better-sqlite3 12, WAL mode), shared by every process on
 * one machine. It survives restarts, so a postback handled just before a crash stays handled.
 * The primary key keeps claims a single index probe at millions of rows; expired keys are
 * pruned on a timer.
 */
export class SqliteStore implements DedupeStore {
  readonly retentionMs: number;
  readonly leaseMs: number;
  private readonly db: Database;
  private readonly claimTransaction: (key: string, now: number) => ClaimResult;
  private readonly commitStatement: Statement;
  private readonly releaseStatement: Statement;
  private readonly pruneStatement: Statement;
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(options: SqliteStoreOptions) {
    if (typeof options.path !== 'string' || options.path === '') {
      throw new TypeError('option path must name the SQLite database file');
    }
    this.retentionMs = positiveInteger('retentionMs', options.retentionMs ?? 90 * DAY);
    this.leaseMs = positiveInteger('leaseMs', options.leaseMs ?? 5 * 60 * 1000);
    const pruneIntervalMs = positiveInteger('pruneIntervalMs', options.pruneIntervalMs ?? 60 * 60 * 1000);
    const Sqlite = loadOptionalModule('better-sqlite3', 'SqliteStore', 'better-sqlite3@12') as DatabaseConstructor;

    this.db = new Sqlite(options.path);
    this.db.pragma('journal_mode = WAL');
    // FULL: a commit is on disk before the router answers 2xx, so a power cut cannot undo it.
    this.db.pragma('synchronous = FULL');
    // Other processes on the same file wait for a write lock instead of failing at once.
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS postback_keys (
        key TEXT PRIMARY KEY,
        state INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS postback_keys_expires_at ON postback_keys (expires_at);
    `);

    // Insert, or take over a row whose lease or retention has run out; otherwise report it.
    const insert = this.db.prepare(`
      INSERT INTO postback_keys (key, state, expires_at) VALUES (?, ${IN_FLIGHT}, ?)
      ON CONFLICT (key) DO UPDATE SET state = ${IN_FLIGHT}, expires_at = excluded.expires_at WHERE expires_at <= ?
    `);
    const current = this.db.prepare('SELECT state FROM postback_keys WHERE key = ?');
    const claim = this.db.transaction((key: string, now: number): ClaimResult => {
      if (insert.run(key, now + this.leaseMs, now).changes === 1) return 'claimed';
      const row = current.get(key) as { state: number } | undefined;
      return row?.state === HANDLED ? 'handled' : 'in-flight';
    });
    // IMMEDIATE takes the write lock first, so two processes cannot both see "absent".
    this.claimTransaction = (key, now) => claim.immediate(key, now);
    this.commitStatement = this.db.prepare(
      `INSERT INTO postback_keys (key, state, expires_at) VALUES (?, ${HANDLED}, ?)
       ON CONFLICT (key) DO UPDATE SET state = ${HANDLED}, expires_at = excluded.expires_at`,
    );
    this.releaseStatement = this.db.prepare(`DELETE FROM postback_keys WHERE key = ? AND state = ${IN_FLIGHT}`);
    this.pruneStatement = this.db.prepare('DELETE FROM postback_keys WHERE expires_at <= ?');
    this.pruneTimer = setInterval(() => {
      try {
        this.prune();
      } catch {
        // A busy or closed database is pruned next time.
      }
    }, pruneIntervalMs);
    this.pruneTimer.unref();
  }

  claim(key: string): ClaimResult {
    return this.claimTransaction(key, Date.now());
  }

  commit(key: string): void {
    this.commitStatement.run(key, Date.now() + this.retentionMs);
  }

  release(key: string): void {
    this.releaseStatement.run(key);
  }

  /** Deletes expired keys now; returns how many. */
  prune(): number {
    return this.pruneStatement.run(Date.now()).changes;
  }

  close(): void {
    clearInterval(this.pruneTimer);
    this.db.close();
  }
}
