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
  /** Records the key as handled and, unless `record` is null, the subject's new record. */
  commit(record: JournalRecord | null): void | Promise<void>;
  /**
   * Gives the key and the subject up: the postback may be handled again. `reason` says why:
   * `failed`, a listener threw (all have finished); `timeout`, listeners ran past the timeout
   * and may still be running (a transactional claim must then never let their later writes
   * reach a transaction that commits).
   */
  release(reason: 'failed' | 'timeout'): void | Promise<void>;
}

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
  /** Ends connections and timers the store opened. */
  close?(): void | Promise<void>;
}
