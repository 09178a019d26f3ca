import type { HistoryLog, NewHistoryEntry } from '../../lib/history/history-entry';
import type {
  BeginResult,
  CommitOutcome,
  InboxClaim,
  InboxEntry,
  InboxQuery,
  InboxRow,
  InboxStats,
  JournalReadResult,
  JournalRecord,
  PostbackStore,
  StoreClaim,
  StoreInbox,
} from '../../lib';
import { isThenable } from '../../lib/delivery/call-listeners';

/** Every store call the layer can fail, hang, delay or pause. */
export const STORE_OPS = [
  'begin',
  'commit',
  'release',
  'renew',
  'readJournal',
  'inbox.add',
  'inbox.next',
  'row.start',
  'row.commit',
  'row.release',
  'row.recordFailure',
  'row.renew',
] as const;
export type StoreOp = (typeof STORE_OPS)[number];

/** One call as the layer saw it: `n` counts the calls of its op on this store, from 1. */
export interface StoreCall {
  readonly op: StoreOp;
  readonly n: number;
  readonly key: string | null;
  readonly subject: string | null;
  /** What a commit asked to write as the subject's record. */
  readonly record?: JournalRecord | null;
}

/** A gate a paused call waits at until the test opens it. */
export class Gate {
  private opened = false;
  private readonly waiters: (() => void)[] = [];
  get isOpen(): boolean {
    return this.opened;
  }
  /** Calls waiting at it now. */
  get waiting(): number {
    return this.waiters.length;
  }
  open(): void {
    this.opened = true;
    for (const wake of this.waiters.splice(0)) wake();
  }
  wait(): Promise<void> {
    if (this.opened) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  /** Resolves once `count` calls wait here. */
  async reached(count = 1, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.waiters.length < count) {
      if (Date.now() > deadline) throw new Error(`gate: ${this.waiters.length} of ${count} calls arrived in ${ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

/**
 * What happens to a call:
 * - `throw`: it throws at once, never reaching the store (a synchronous driver's error);
 * - `fail`: it rejects, never reaching the store (a connection refused);
 * - `fail-after`: the store does it, then the caller gets a rejection (the answer was lost);
 * - `hang`: it never answers (until `heal()`, which then lets it through);
 * - `delay`: it reaches the store after `ms`;
 * - `pause`: it waits at the gate, then reaches the store.
 */
export type Fault =
  | { readonly kind: 'throw' }
  | { readonly kind: 'fail' }
  | { readonly kind: 'fail-after' }
  | { readonly kind: 'hang' }
  | { readonly kind: 'delay'; readonly ms: number }
  | { readonly kind: 'pause'; readonly gate: Gate };

export interface FaultRule {
  readonly op: StoreOp;
  readonly fault: Fault;
  /** The call it applies to, by the count of its op (from 1); default: the next matching call. */
  readonly nth?: number;
  /** How many matching calls it applies to; default 1, Infinity for every one. */
  readonly times?: number;
  /** Only calls this accepts. */
  readonly match?: (call: StoreCall) => boolean;
}

interface ActiveRule extends FaultRule {
  left: number;
}

export class InjectedFault extends Error {
  constructor(
    readonly call: StoreCall,
    when: string,
  ) {
    super(`injected fault: ${call.op} #${call.n}${call.key === null ? '' : ` (${call.key})`} ${when}`);
  }
}

type Maybe<T> = T | Promise<T>;

/**
 * A store wrapped so that tests can make any of its calls fail, hang, wait or pause, at a chosen
 * call, and see every call made. Calls no rule picks go straight through, synchronous ones
 * staying synchronous, so that the router's fast path is what runs. `kill()` makes the store
 * as a dead process leaves it: every call from then on never answers.
 */
export class FaultyStore<T = undefined> implements PostbackStore<T> {
  readonly calls: StoreCall[] = [];
  readonly inbox?: StoreInbox<T>;
  /** The store's own history, its entries written with its commits as without the faults. */
  readonly history: HistoryLog | undefined;
  private readonly rules: ActiveRule[] = [];
  private readonly counts = new Map<StoreOp, number>();
  private readonly hung: (() => void)[] = [];
  private dead = false;

  constructor(
    readonly inner: PostbackStore<T> & { readonly inbox?: StoreInbox<T> },
    /**
     * For a store whose claims are transactions on a connection: breaks the claim's connection,
     * as a failure that never reached the store (a connection lost) does to it: its
     * transaction is rolled back. Without it such a failure leaves the transaction open.
     */
    private readonly loseConnection?: (claim: StoreClaim<T>) => Promise<void>,
  ) {
    if (inner.inbox !== undefined) this.inbox = this.wrapInbox(inner.inbox);
    this.history = inner.history;
    if (inner.readJournal === undefined) delete this.readJournal;
  }

  inject(rule: FaultRule): this {
    this.rules.push({ ...rule, left: rule.times ?? 1 });
    return this;
  }

  /** Drops every rule and lets hung calls through. */
  heal(): void {
    this.rules.splice(0);
    for (const release of this.hung.splice(0)) release();
  }

  /** From now on no call answers, as if the process had died; hung ones stay hung. */
  kill(): void {
    this.dead = true;
    this.hung.splice(0);
  }

  get killed(): boolean {
    return this.dead;
  }

  count(op: StoreOp): number {
    return this.counts.get(op) ?? 0;
  }

  begin(key: string, subject: string | null): Maybe<BeginResult<T>> {
    return this.call(
      { op: 'begin', key, subject },
      () => this.inner.begin(key, subject),
      (result) => (typeof result === 'object' ? this.wrapClaim(result, key, subject, '') : result),
    );
  }

  readJournal?: (subjects: readonly string[]) => Maybe<JournalReadResult> = (subjects) =>
    this.call({ op: 'readJournal', key: null, subject: subjects.join(',') }, () => {
      if (this.inner.readJournal === undefined) throw new Error('the store reads no journal');
      return this.inner.readJournal(subjects);
    });

  close(): Maybe<void> {
    return this.inner.close?.();
  }

  /**
   * Runs one call through the rules: `real` is the store's own call, `wrap` turns its answer
   * into what the caller gets. Synchronous when no rule picks the call and the store answered
   * synchronously.
   */
  private call<R, W = R>(
    what: Omit<StoreCall, 'n'>,
    real: () => Maybe<R>,
    wrap: (result: R) => W = (result) => result as unknown as W,
    claim?: StoreClaim<T>,
  ): Maybe<W> {
    const n = (this.counts.get(what.op) ?? 0) + 1;
    this.counts.set(what.op, n);
    const call: StoreCall = { ...what, n };
    this.calls.push(call);
    if (this.dead) return this.never();
    const fault = this.take(call);
    const through = (): Maybe<W> => {
      if (this.dead) return this.never();
      const result = real();
      return isThenable(result) ? Promise.resolve(result).then(wrap) : wrap(result);
    };
    if (fault === null) return through();
    // A call that fails on a transactional claim (PostgreSQL's) loses its connection with it; one
    // that is only late does not.
    const loseConnection = (): Promise<void> | null =>
      claim?.transactional === true && this.loseConnection !== undefined ? this.loseConnection(claim) : null;
    switch (fault.kind) {
      case 'throw':
        void loseConnection()?.catch(() => undefined);
        throw new InjectedFault(call, 'thrown');
      case 'fail':
        return Promise.resolve(loseConnection()).then(() => {
          throw new InjectedFault(call, 'failed');
        });
      case 'fail-after':
        return Promise.resolve()
          .then(through)
          .then((result) => {
            this.abandonLostClaim(result);
            throw new InjectedFault(call, 'done, but its answer was lost');
          });
      case 'hang':
        return new Promise<void>((resolve) => this.hung.push(resolve)).then(through);
      case 'delay':
        return new Promise((resolve) => setTimeout(resolve, fault.ms)).then(through);
      case 'pause':
        return fault.gate.wait().then(through);
    }
  }

  /**
   * A claim whose answer was lost: a driver that loses an answer loses its connection with it, so
   * a transaction (PostgreSQL's) is rolled back; a lease stays until it lapses, as a dead holder's.
   */
  private abandonLostClaim(result: unknown): void {
    const claim = result as StoreClaim<T> | null | string;
    if (typeof claim !== 'object' || claim === null || !claim.transactional) return;
    const lost = this.loseConnection?.(claim) ?? Promise.resolve(claim.release('timeout'));
    void lost.catch(() => undefined);
  }

  private never<W>(): Promise<W> {
    return new Promise<W>(() => undefined);
  }

  private take(call: StoreCall): Fault | null {
    for (const [index, rule] of this.rules.entries()) {
      if (rule.op !== call.op) continue;
      if (rule.nth !== undefined && rule.nth !== call.n) continue;
      if (rule.match !== undefined && !rule.match(call)) continue;
      rule.left -= 1;
      if (rule.left <= 0) this.rules.splice(index, 1);
      return rule.fault;
    }
    return null;
  }

  private wrapClaim<C extends StoreClaim<T>>(claim: C, key: string, subject: string | null, prefix: '' | 'row.'): C {
    const op = (name: 'start' | 'commit' | 'release' | 'renew' | 'recordFailure'): StoreOp =>
      `${prefix}${name}` as StoreOp;
    const wrapped: StoreClaim<T> & { leaseMs?: number; renew?: () => Maybe<void> } = {
      previous: claim.previous,
      get transaction() {
        return claim.transaction;
      },
      transactional: claim.transactional,
      commit: (record: JournalRecord | null, outcome: CommitOutcome, entry?: NewHistoryEntry) =>
        this.call(
          { op: op('commit'), key, subject, record },
          () => (entry === undefined ? claim.commit(record, outcome) : claim.commit(record, outcome, entry)),
          undefined,
          claim,
        ),
      release: (reason: 'failed' | 'timeout') =>
        this.call({ op: op('release'), key, subject }, () => claim.release(reason), undefined, claim),
    };
    const source = claim as C & Partial<InboxClaim<T>> & { leaseMs?: number; renew?: () => Maybe<void> };
    if (source.leaseMs !== undefined) wrapped.leaseMs = source.leaseMs;
    if (source.renew !== undefined) {
      wrapped.renew = () => this.call({ op: op('renew'), key, subject }, () => source.renew?.());
    }
    const { recordFailure, start, giveBack } = source;
    if (source.row !== undefined && recordFailure !== undefined) {
      Object.assign(wrapped, {
        row: source.row,
        superseded: source.superseded,
        recordFailure: (error: string, retryAfterMs: number | null) =>
          this.call(
            { op: op('recordFailure'), key, subject },
            () => recordFailure.call(claim, error, retryAfterMs),
            undefined,
            claim,
          ),
      });
      if (start !== undefined) {
        Object.assign(wrapped, {
          start: () => this.call({ op: op('start'), key, subject }, () => start.call(claim), undefined, claim),
        });
      }
      // Not a fault point: the router closes, or the attempt could not be counted.
      if (giveBack !== undefined) Object.assign(wrapped, { giveBack: () => giveBack.call(claim) });
    }
    return wrapped as C;
  }

  private wrapInbox(inbox: StoreInbox<T>): StoreInbox<T> {
    return {
      add: (entry: InboxEntry, history?: NewHistoryEntry) =>
        this.call({ op: 'inbox.add', key: entry.key, subject: entry.subject }, () =>
          history === undefined ? inbox.add(entry) : inbox.add(entry, history),
        ),
      next: () =>
        Promise.resolve(
          this.call(
            { op: 'inbox.next', key: null, subject: null },
            () => inbox.next(),
            (claim) => (claim === null ? null : this.wrapClaim(claim, claim.row.key, claim.row.subject, 'row.')),
          ),
        ),
      waitForWork: (ms: number) => inbox.waitForWork(ms),
      stats: (): Promise<InboxStats> => inbox.stats(),
      list: (query?: InboxQuery): Promise<InboxRow[]> => inbox.list(query),
      retry: (target) => inbox.retry(target),
    };
  }
}
