import type { HistoryLog, NewHistoryEntry } from '../history/history-entry';

/**
 * The journal's record of one action or inquiry, as a store keeps it: its last state, JSON-safe.
 * The router writes and reads it; a store only keeps it (in memory, as JSON, or as jsonb).
 */
export type JournalRecord = Readonly<Record<string, string | null>>;

/**
 * A postback a store has claimed for this caller: nobody else handles its key, nor (when it has
 * one) its subject, until the claim is committed or released.
 */
export interface StoreClaim<T> {
  /** The subject's record from before this postback, or null on first sight (or no subject). */
  readonly previous: JournalRecord | null;
  /** What listeners get as `ctx.transaction`. */
  readonly transaction: T;
  /**
   * True when what listeners write through `transaction` commits and rolls back with this claim.
   * Then a claim whose listeners run past the timeout is released at once (their late writes
   * are lost with it), and a commit that fails is answered 503. Otherwise the listeners' work is
   * done whatever the store says, so the claim is kept until they finish, and a failed commit is
   * only reported.
   */
  readonly transactional: boolean;
  /**
   * Records the key as handled and, unless `record` is null, the subject's new record. `outcome`
   * says how it was emitted (an inbox row keeps it). Fenced: a claim whose lease lapsed and whose
   * subject (or key) another claim took over since throws ClaimLostError and writes nothing. A
   * commit made again after one whose answer was lost (it was done) succeeds, writing nothing
   * twice.
   *
   * `entry`, given only when the store's history log is `writtenWithCommits`: the postback's
   * history entry, which the commit writes in its own transaction (and does not write when the
   * commit writes nothing or fails). A commit made again is given it again.
   */
  commit(record: JournalRecord | null, outcome: CommitOutcome, entry?: NewHistoryEntry): void | Promise<void>;
  /**
   * Gives the key and the subject up: the postback may be handled again. `reason` says why:
   * `failed`, a listener threw (all have finished); `timeout`, listeners ran past the timeout
   * and may still be running (a transactional claim must then never let their later writes
   * reach a transaction that commits).
   */
  release(reason: 'failed' | 'timeout'): void | Promise<void>;
  /**
   * Where the store holds claims by a lease (that lapses should their holder die): its length, in
   * ms. The router renews such a claim every third of it while listeners run and while a failed
   * commit is tried again.
   */
  readonly leaseMs?: number;
  /** Extends the lease; throws ClaimLostError when another claim took the subject or key over. */
  renew?(): void | Promise<void>;
}

/** What `readJournal` gives: one record or null per subject asked for. */
export type JournalReadResult = readonly (JournalRecord | null)[];

/**
 * How a claimed postback was handled, as an inbox row keeps it: emitted as its event, emitted
 * as `stale`, or found already applied (a state that reconciliation delivered earlier).
 */
export type CommitOutcome = 'delivered' | 'stale' | 'duplicate';

/**
 * What a store answers to `begin`:
 * - a claim: the caller handles the postback and must commit or release the claim;
 * - `handled`: the key was committed before (a duplicate);
 * - `in-flight`: someone else holds the key or the subject, and did not let go in time.
 */
export type BeginResult<T> = StoreClaim<T> | 'handled' | 'in-flight';

/**
 * Where the router remembers which postbacks were handled and the last state of each action and
 * inquiry (the journal). `begin` must be atomic: of any number of concurrent begins of one key,
 * at most one gets a claim, and while a subject is claimed no other begin of it gets one. Any
 * method may return a promise; one that throws or rejects makes the router answer 503.
 *
 * `T` is the type of `ctx.transaction`: `undefined` for stores whose claims are not
 * transactions.
 */
export interface PostbackStore<T = undefined> {
  /**
   * Claims a postback by its dedupe `key` and its `subject` (`action:<id>`, `inquiry:<id>`, or
   * null for a postback without one), and reads the subject's journal record.
   */
  begin(key: string, subject: string | null): BeginResult<T> | Promise<BeginResult<T>>;
  /**
   * The journal's records of these subjects, in the same order (null where it keeps none), read
   * without claiming anything: what reconciliation compares impact.com's own state with.
   */
  readJournal?(subjects: readonly string[]): JournalReadResult | Promise<JournalReadResult>;
  /**
   * Where history is kept (`postbacks.history`). A store without one has its history kept in the
   * router's memory, the newest 10,000 entries.
   */
  readonly history?: HistoryLog | undefined;
  /** Ends connections and timers the store opened. */
  close?(): void | Promise<void>;
}

/** Where a row of the inbox stands. */
export type InboxStatus = 'pending' | 'retrying' | 'delivered' | 'dead';

/** A postback as the inbox keeps it from its arrival: enough to rebuild its event exactly. */
export interface InboxEntry {
  /** The dedupe key: a second arrival of the same postback is not stored again. */
  readonly key: string;
  readonly subject: string | null;
  readonly route: string;
  readonly format: string;
  readonly ip: string;
  readonly path: string;
  readonly receivedAt: Date;
  /** Every field as received, its key as sent (the token removed), as JSON text. */
  readonly fields: string;
}

export interface InboxRow extends InboxEntry {
  readonly id: number;
  readonly status: InboxStatus;
  /**
   * Deliveries tried so far, the successful one included. Where the store's claims `start`,
   * each is counted as it begins, so one cut short (the process died, its failure could not be
   * recorded) counts too; a claim's row shows those begun before it.
   */
  readonly attempts: number;
  readonly lastError: string | null;
  /** When a pending or retrying row is due. */
  readonly nextAttemptAt: Date;
  readonly deliveredAt: Date | null;
  /** What its delivery was, once delivered. */
  readonly outcome: CommitOutcome | null;
}

/**
 * A row claimed for delivery: a claim like a direct one, whose commit also marks the row
 * delivered. After a failure the worker releases it, then records the attempt.
 */
export interface InboxClaim<T> extends StoreClaim<T> {
  readonly row: InboxRow;
  /**
   * Counts the attempt about to begin, in a write that stays whatever becomes of the delivery,
   * before any listener runs; rejects when it cannot (the row is then given back). Its commit
   * and `recordFailure` then count nothing more. A claim without it counts its attempt as it
   * ends, so that one cut short is not counted.
   */
  start?(): Promise<void>;
  /**
   * Records a failed attempt: due again `retryAfterMs` from now (the store's now, so that every
   * instance reads one clock), or dead when it is null. True once recorded; false when the row
   * was no longer this claim's to record (another took it over, or counted an attempt since).
   */
  recordFailure(error: string, retryAfterMs: number | null): Promise<boolean>;
  /**
   * The action moved on since the row arrived: a later postback of it was delivered, or
   * reconciliation read a newer state (the row died, or waited, and was retried). It is
   * delivered as `stale`, so that the action never moves back.
   */
  readonly superseded?: boolean;
  /**
   * Lets the row go, counting nothing more than `start` did: the router closes with its
   * delivery still under way, or the attempt could not be counted. Without it the row waits
   * until its lease (if any) lapses.
   */
  giveBack?(): Promise<void>;
}

export interface InboxStats {
  readonly pending: number;
  readonly retrying: number;
  readonly dead: number;
  readonly delivered: number;
  /** How long the oldest pending or retrying row has waited, in ms; null when none waits. */
  readonly oldestPendingAgeMs: number | null;
}

export interface InboxQuery {
  readonly status?: InboxStatus;
  /** At most this many rows, newest first. Default 50. */
  readonly limit?: number;
}

/**
 * The inbox a durable store keeps for delivery: 'inbox': postbacks stored on arrival (with their
 * dedupe keys, in one transaction), then claimed one at a time for delivery, a later row of a
 * subject only once every earlier one is delivered or dead.
 */
export interface StoreInbox<T> {
  /**
   * Stores a postback and its key, atomically; 'duplicate' when the key is there already.
   * `history` as for a claim's commit: the arrival's entry, written with the row (not for a duplicate).
   */
  add(entry: InboxEntry, history?: NewHistoryEntry): 'stored' | 'duplicate' | Promise<'stored' | 'duplicate'>;
  /** Claims the next row due, or null when none is. */
  next(): Promise<InboxClaim<T> | null>;
  /** Resolves once a row may have become due (a new arrival anywhere), or after `ms`. */
  waitForWork(ms: number): Promise<void>;
  stats(): Promise<InboxStats>;
  list(query?: InboxQuery): Promise<InboxRow[]>;
  /**
   * Makes a row, or every dead row, pending again with its attempts reset; gives how many. A row
   * being delivered at that moment is left to that delivery (PostgreSQL waits for it to end).
   */
  retry(target: number | { readonly status: 'dead' }): Promise<number>;
}

/** A store that keeps an inbox (SqliteStore, PostgresStore). */
export interface InboxStore<T> extends PostbackStore<T> {
  readonly inbox: StoreInbox<T>;
}
