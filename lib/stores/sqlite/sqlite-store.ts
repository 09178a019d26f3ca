import { randomUUID } from 'node:crypto';
import { booleanOption, loadOptionalModule, positiveInteger } from '../optional-module';
import { GroupCommit } from './group-commit';
import { BUSY, retryWhileBusy } from '../retry-while-busy';
import { ClaimLostError } from '../claim-lost';
import { SqliteInbox, type SqliteDatabase, type SqliteWrites } from './sqlite-inbox';
import {
  historyRow,
  SQLITE_HISTORY_DDL,
  SQLITE_HISTORY_INSERT,
  SqliteHistory,
  upgradeSqliteHistory,
} from './sqlite-history';
import type { NewHistoryEntry } from '../../history/history-entry';
import type { BeginResult, CommitOutcome, InboxStore, JournalReadResult, JournalRecord, StoreClaim } from '../store';
import { clock } from '../../clock';

export interface SqliteStoreOptions {
  /** The database file; created if missing. `:memory:` works but is not durable. */
  readonly path: string;
  /** How long a handled key and a journal record are kept, in ms. Default 90 days. */
  readonly retentionMs?: number;
  /** How long a claim holds before another process may take it, in ms. Default 5 minutes. */
  readonly leaseMs?: number;
  /** How long a postback waits for another process holding its action, in ms. Default 5,000. */
  readonly lockTimeoutMs?: number;
  /** How often expired keys and records are deleted, in ms. Default 1 hour. */
  readonly pruneIntervalMs?: number;
  /**
   * With delivery: 'inbox': how long a worker holds a row it delivers, renewed every third of it
   * while listeners run; a row held by a process that died is delivered again after it. Default 30 s.
   */
  readonly inboxLeaseMs?: number;
  /**
   * Whether to create the file and the tables when they are missing. Default true. With false
   * (for tools that only look, such as the CLI's `inbox` and `reconcile`) a missing file or table
   * throws, naming it, nothing is created, and expired rows are not pruned.
   */
  readonly create?: boolean;
}

/** The tables a store's file holds: the store's and its inbox's. */
const SQLITE_TABLES = ['postback_keys', 'postback_journal', 'postback_holds', 'postback_inbox'] as const;

interface Database extends SqliteDatabase {
  pragma(source: string): unknown;
  close(): unknown;
}

type DatabaseConstructor = new (path: string, options?: { fileMustExist?: boolean }) => Database;

/** better-sqlite3 13 needs Node.js 22 or later (on 20 it crashes): the version to install here. */
export function betterSqliteForThisNode(major = Number(process.versions.node.split('.')[0])): string {
  return major >= 22 ? 'better-sqlite3@13' : 'better-sqlite3@12';
}

/** WAL pages after which a commit checkpoints them into the database. */
const WAL_CHECKPOINT_PAGES = 10_000;

const HANDLED = 1;
const DAY = 24 * 60 * 60 * 1000;

/** The second write of a claim: commit (the key handled, the record written) or release. */
interface Finish {
  readonly key: string;
  readonly subject: string | null;
  readonly holder: string;
  /** The record the claim read, as stored (JSON), which a commit after a lapsed hold finds unchanged. */
  readonly readText: string | null;
  readonly record: JournalRecord | null;
  readonly handled: boolean;
  readonly now: number;
  /** The postback's history entry, written with the commit. */
  readonly entry: NewHistoryEntry | undefined;
}

/** What a claim holds in postback_holds: its subject, or its key for a postback without one. */
function holdName(key: string, subject: string | null): string {
  return subject ?? `key:${key}`;
}

class SqliteClaim implements StoreClaim<undefined> {
  readonly transaction = undefined;
  readonly transactional = false;

  constructor(
    private readonly store: {
      readonly finishes: GroupCommit<Finish, string | null>;
      readonly renewHold: (name: string, holder: string) => boolean;
    },
    private readonly key: string,
    private readonly subject: string | null,
    /** This claim's token on its hold, so that it gives up and writes only what it holds. */
    private readonly holder: string,
    readonly previous: JournalRecord | null,
    /** The record as stored when the claim read it. */
    private readonly readText: string | null,
    readonly leaseMs: number,
  ) {}

  async commit(record: JournalRecord | null, _outcome?: CommitOutcome, entry?: NewHistoryEntry): Promise<void> {
    const problem = await this.finish(record, true, entry);
    if (problem !== null) throw new ClaimLostError(problem);
  }

  async release(): Promise<void> {
    await this.finish(null, false);
  }

  renew(): void {
    const name = holdName(this.key, this.subject);
    if (!this.store.renewHold(name, this.holder)) throw new ClaimLostError(`the claim of ${name}`);
  }

  private finish(record: JournalRecord | null, handled: boolean, entry?: NewHistoryEntry): Promise<string | null> {
    const { key, subject, holder, readText } = this;
    return this.store.finishes.submit({ key, subject, holder, readText, record, handled, now: clock.now(), entry });
  }
}

/**
 * A durable store in one SQLite file (better-sqlite3 12 or 13, WAL mode), shared by every process on
 * one machine. It survives restarts, so a postback handled just before a crash stays handled,
 * and the journal with it. A claim is one `BEGIN IMMEDIATE` transaction that holds the subject
 * (the action) with a lease, or the key of a postback without one, so two processes never both
 * claim a key, nor apply two postbacks of one action at once. Commits are written in groups:
 * the commits of the postbacks handled at the same time share one transaction and one fsync
 * (see GroupCommit), and the 2xx waits for it. Primary keys keep each lookup a single index
 * probe at millions of rows; expired rows are pruned on a timer.
 *
 * Durability: a commit is on disk before the 2xx (`synchronous = FULL`). A claim is written
 * without an fsync of its own (a second connection with `synchronous = NORMAL`): it survives
 * the process dying, and a power cut before the next commit's fsync loses it with the work it
 * stood for, which is then handled again, as a claim whose lease lapsed would be.
 *
 * SQLite's driver is synchronous and its transactions cannot stay open while listeners await,
 * so claims are not transactions the host can write in (`ctx.transaction` is undefined).
 *
 * It keeps an inbox for delivery: 'inbox' (see SqliteInbox).
 */
export class SqliteStore implements InboxStore<undefined> {
  readonly retentionMs: number;
  readonly leaseMs: number;
  readonly lockTimeoutMs: number;
  readonly inbox: SqliteInbox;
  /** History (option `history` of the router), in the store's file. */
  readonly history: SqliteHistory | undefined;
  private readonly db: Database;
  /** The claims' connection: the same file, without an fsync per claim. */
  private readonly claimDb: Database;
  private readonly finishes: GroupCommit<Finish, string | null>;
  private readonly claimTransaction: (
    key: string,
    subject: string | null,
    now: number,
  ) => BeginResult<undefined> | typeof BUSY;
  private readonly pruneTransaction: (now: number) => number;
  private readonly recordOf: (subject: string, now: number) => JournalRecord | null;
  private pruneTimer: NodeJS.Timeout | undefined;

  constructor(options: SqliteStoreOptions) {
    if (typeof options.path !== 'string' || options.path === '') {
      throw new TypeError('option path must name the SQLite database file');
    }
    this.retentionMs = positiveInteger('retentionMs', options.retentionMs ?? 90 * DAY);
    this.leaseMs = positiveInteger('leaseMs', options.leaseMs ?? 5 * 60 * 1000);
    this.lockTimeoutMs = positiveInteger('lockTimeoutMs', options.lockTimeoutMs ?? 5000);
    const pruneIntervalMs = positiveInteger('pruneIntervalMs', options.pruneIntervalMs ?? 60 * 60 * 1000);
    const Sqlite = loadOptionalModule(
      'better-sqlite3',
      'SqliteStore',
      betterSqliteForThisNode(),
    ) as DatabaseConstructor;

    const create = booleanOption('create', options.create, true);
    this.db = create ? new Sqlite(options.path) : openExisting(Sqlite, options.path);
    this.db.pragma('journal_mode = WAL');
    // FULL: a commit is on disk before the router answers 2xx, so a power cut cannot undo it.
    this.db.pragma('synchronous = FULL');
    // Other processes on the same file wait for a write lock instead of failing at once.
    this.db.pragma('busy_timeout = 5000');
    // A checkpoint every 10,000 pages (a WAL of up to 40 MB) instead of SQLite's 1,000: a page
    // that several postbacks rewrite is copied to the database once per checkpoint, and a
    // postback rewrites a few. Measured: 8% more postbacks a second. Durability is the same.
    this.db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    if (create)
      this.db.exec(`
      CREATE TABLE IF NOT EXISTS postback_keys (
        key TEXT PRIMARY KEY,
        state INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS postback_keys_expires_at ON postback_keys (expires_at);
      CREATE TABLE IF NOT EXISTS postback_journal (
        subject TEXT PRIMARY KEY,
        record TEXT,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS postback_journal_expires_at ON postback_journal (expires_at);
      -- The subjects being handled now, each held by one claim until its lease lapses: a table of
      -- its own, so that a claim writes one small, hot page instead of a journal row and its index.
      CREATE TABLE IF NOT EXISTS postback_holds (
        subject TEXT PRIMARY KEY,
        held_by TEXT NOT NULL,
        held_until INTEGER NOT NULL
      ) WITHOUT ROWID;
      ${SQLITE_HISTORY_DDL}
    `);
    if (create) upgradeSqliteHistory(this.db);

    // Claims on a connection of their own, without an fsync each: see the class comment.
    const claimDb = new Sqlite(options.path);
    claimDb.pragma('synchronous = NORMAL');
    claimDb.pragma('busy_timeout = 5000');
    claimDb.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
    this.claimDb = claimDb;
    // A file made by an earlier version, opened only to look (create: false), may have no history
    // (its table, if there, is read as it is).
    this.history = create || hasTable(claimDb, 'postback_history') ? new SqliteHistory(claimDb) : undefined;
    const keyState = claimDb.prepare('SELECT state, expires_at FROM postback_keys WHERE key = ?');
    const holdOf = claimDb.prepare('SELECT held_until FROM postback_holds WHERE subject = ?');
    const journalRow = claimDb.prepare('SELECT record, expires_at FROM postback_journal WHERE subject = ?');
    const takeHold = claimDb.prepare(
      'INSERT OR REPLACE INTO postback_holds (subject, held_by, held_until) VALUES (?, ?, ?)',
    );
    const extendHold = claimDb.prepare('UPDATE postback_holds SET held_until = ? WHERE subject = ? AND held_by = ?');
    // A claim holds its subject (a row of postback_holds), or for a postback without one
    // (catalog) its key, under a token of its own, with a lease. The hold keeps the key too
    // (the key is made from the postback, the action's id in it): a copy of it, in this process
    // or another, waits for the hold like any other postback of the action, then finds the key
    // handled or free. The key's row is written once, handled, by the commit. A claim so writes
    // one row, in a table of a few pages, instead of a key row and a journal row with their
    // expiry indexes: one WAL page of 4 KiB per claim instead of four.
    this.claimTransaction = claimDb.transaction((key: string, subject: string | null, now: number) => {
      const found = keyState.get(key) as { state: number; expires_at: number } | undefined;
      // An in-flight key row is a claim of a version before holds: it lapses like one.
      if (found !== undefined && found.expires_at > now) return found.state === HANDLED ? 'handled' : 'in-flight';
      const name = holdName(key, subject);
      const hold = holdOf.get(name) as { held_until: number } | undefined;
      if (hold !== undefined && hold.held_until > now) return BUSY;
      let read: string | null = null;
      if (subject !== null) {
        const row = journalRow.get(subject) as { record: string | null; expires_at: number } | undefined;
        if (row?.record != null && row.expires_at > now) read = row.record;
      }
      const holder = randomUUID();
      takeHold.run(name, holder, now + this.leaseMs);
      const previous = read === null ? null : (JSON.parse(read) as JournalRecord);
      return new SqliteClaim(claimParts, key, subject, holder, previous, read, this.leaseMs);
    }).immediate;

    const commitKey = this.db.prepare(
      `INSERT INTO postback_keys (key, state, expires_at) VALUES (?, ${HANDLED}, ?)
       ON CONFLICT (key) DO UPDATE SET state = ${HANDLED}, expires_at = excluded.expires_at`,
    );
    const isHandled = this.db.prepare(
      `SELECT 1 FROM postback_keys WHERE key = ? AND state = ${HANDLED} AND expires_at > ?`,
    );
    const holderOf = this.db.prepare('SELECT held_by FROM postback_holds WHERE subject = ?');
    const recordText = this.db.prepare('SELECT record, expires_at FROM postback_journal WHERE subject = ?');
    const writeRecord = this.db.prepare(`
      INSERT INTO postback_journal (subject, record, expires_at) VALUES (?, ?, ?)
      ON CONFLICT (subject) DO UPDATE SET record = excluded.record, expires_at = excluded.expires_at
    `);
    const unhold = this.db.prepare('DELETE FROM postback_holds WHERE subject = ? AND held_by = ?');
    // Prepared on first use: a file opened only to look may have no history table to write.
    let insertHistory: ReturnType<Database['prepare']> | undefined;
    // Shared with the inbox, whose arrivals and deliveries write the same rows.
    const writes: SqliteWrites = {
      commitKey: (key, now) => commitKey.run(key, now + this.retentionMs),
      writeRecord: (subject, record, now) => writeRecord.run(subject, JSON.stringify(record), now + this.retentionMs),
      mayWrite: (name, holder, subject, readText, now) => {
        const hold = holderOf.get(name) as { held_by: string } | undefined;
        if (hold !== undefined) return hold.held_by === holder;
        // The hold lapsed and was pruned: the claim may still write if nobody changed the
        // record it read meanwhile (one who took the subject over would have).
        if (subject === null) return true;
        const row = recordText.get(subject) as { record: string | null; expires_at: number } | undefined;
        return (row !== undefined && row.expires_at > now ? row.record : null) === readText;
      },
      unhold: (name, holder) => unhold.run(name, holder),
      writeHistory: (entry) => {
        insertHistory ??= this.db.prepare(SQLITE_HISTORY_INSERT);
        insertHistory.run(...historyRow(entry));
      },
    };
    /** Null once written; why not, when this claim's hold was taken over. */
    const finishOne = ({ key, subject, holder, readText, record, handled, now, entry }: Finish): string | null => {
      const name = holdName(key, subject);
      if (!handled) {
        writes.unhold(name, holder);
        return null;
      }
      if (!writes.mayWrite(name, holder, subject, readText, now)) {
        // Committed before, its answer lost: nothing to write again.
        if (isHandled.get(key, now) !== undefined) return null;
        return `the claim of ${name}`;
      }
      writes.commitKey(key, now);
      if (subject !== null && record !== null) writes.writeRecord(subject, record, now);
      if (entry !== undefined) writes.writeHistory(entry);
      writes.unhold(name, holder);
      return null;
    };
    // The commits and releases of the postbacks handled at the same time: one transaction, one fsync.
    const finishes = new GroupCommit<Finish, string | null>(
      this.db.transaction((batch: readonly Finish[]) => batch.map(finishOne)).immediate,
    );
    const claimParts = {
      finishes,
      renewHold: (name: string, holder: string): boolean =>
        extendHold.run(clock.now() + this.leaseMs, name, holder).changes > 0,
    };

    this.finishes = finishes;
    this.inbox = new SqliteInbox(
      this.db,
      {
        retentionMs: this.retentionMs,
        leaseMs: positiveInteger('inboxLeaseMs', options.inboxLeaseMs ?? 30_000),
        writes,
        create,
      },
      claimDb,
    );

    const readRecord = this.db.prepare('SELECT record FROM postback_journal WHERE subject = ? AND expires_at > ?');
    this.recordOf = (subject, now) => {
      const row = readRecord.get(subject, now) as { record: string | null } | undefined;
      return row?.record == null ? null : (JSON.parse(row.record) as JournalRecord);
    };

    const pruneKeys = this.db.prepare('DELETE FROM postback_keys WHERE expires_at <= ?');
    const pruneJournal = this.db.prepare('DELETE FROM postback_journal WHERE expires_at <= ?');
    // Holds left by a process that died: the table holds only subjects being handled.
    const pruneHolds = this.db.prepare('DELETE FROM postback_holds WHERE held_until <= ?');
    this.pruneTransaction = this.db.transaction(
      (now: number) =>
        pruneKeys.run(now).changes +
        pruneJournal.run(now).changes +
        pruneHolds.run(now).changes +
        this.inbox.prune(now),
    ).immediate;
    // A store that only looks (create: false) deletes nothing either.
    if (create) {
      this.pruneTimer = setInterval(() => {
        try {
          this.prune();
        } catch {
          // A busy or closed database is pruned next time.
        }
      }, pruneIntervalMs);
      this.pruneTimer.unref();
    }
  }

  begin(key: string, subject: string | null): BeginResult<undefined> | Promise<BeginResult<undefined>> {
    const result = this.claimTransaction(key, subject, clock.now());
    if (result !== BUSY) return result;
    return retryWhileBusy(() => this.claimTransaction(key, subject, clock.now()), this.lockTimeoutMs);
  }

  readJournal(subjects: readonly string[]): JournalReadResult {
    const now = clock.now();
    return subjects.map((subject) => this.recordOf(subject, now));
  }

  /** Deletes expired keys and journal records, and rows delivered past the retention, now; returns how many. */
  prune(): number {
    return this.pruneTransaction(clock.now());
  }

  close(): void {
    clearInterval(this.pruneTimer);
    this.finishes.flush();
    this.history?.flush();
    this.inbox.close();
    this.claimDb.close();
    this.db.close();
  }
}

function hasTable(db: Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

/** Opens a store's file that must be there with all its tables; throws naming what is missing. */
function openExisting(Sqlite: DatabaseConstructor, path: string): Database {
  let db: Database;
  try {
    db = new Sqlite(path, { fileMustExist: true });
  } catch (error) {
    throw new Error(
      `SqliteStore: no database at ${path} (${(error as Error).message}); a router's SqliteStore creates it`,
    );
  }
  let missing: string[];
  try {
    const found = new Set(
      (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
        (row) => row.name,
      ),
    );
    missing = SQLITE_TABLES.filter((table) => !found.has(table));
  } catch (error) {
    db.close();
    throw error;
  }
  if (missing.length > 0) {
    db.close();
    throw new Error(
      `SqliteStore: ${path} has no table ${missing.join(', ')}: it is not a store's file, or no router's SqliteStore of this version has opened it yet`,
    );
  }
  return db;
}
