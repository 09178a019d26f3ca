import type { EventEmitter } from 'node:events';
import { PostbackError } from '../errors';
import type { PostbackEvent } from '../events';
import { isStale, recordOf, stateOf, subjectOf, type Ordering } from '../journal/journal';
import type { BeginResult, JournalRecord, PostbackStore, StoreClaim } from '../stores/store';
import { isThenable, runListeners, withTimeout } from './call-listeners';
import { testHooks } from './test-hooks';

export type DeliveryOutcome =
  | { readonly kind: 'delivered' }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'stale' }
  | { readonly kind: 'failed'; readonly error: PostbackError };

export interface DeliverySettings {
  /** How long listeners (and the store's begin) may take before the answer is 503, in ms. */
  readonly listenerTimeout: number;
  readonly ordering: Ordering;
}

type Maybe<T> = T | Promise<T>;

const TIMED_OUT = Symbol('timed out');
const DELIVERED: DeliveryOutcome = Object.freeze({ kind: 'delivered' });
const DUPLICATE: DeliveryOutcome = Object.freeze({ kind: 'duplicate' });
const STALE: DeliveryOutcome = Object.freeze({ kind: 'stale' });

/**
 * A delivery that went asynchronous: `answer` settles when the sender can be answered, `ended`
 * when the store's claim is committed or released (later than the answer when listeners of a
 * store without transactions run past the timeout: their work is being done, so the claim is
 * kept until they finish).
 */
class Pending {
  constructor(
    readonly answer: Promise<DeliveryOutcome>,
    readonly ended: Promise<unknown>,
  ) {}
}

function failed(error: PostbackError): DeliveryOutcome {
  return { kind: 'failed', error };
}

function ignore(): void {
  // A promise whose outcome is reported elsewhere.
}

/**
 * Hands each postback to the host exactly once, as one unit of work the store opens
 * (`store.begin`): claim its key and its subject (the action or inquiry) and read the journal,
 * run the listeners with `(event, { previous, transaction })`, then commit (the key as handled
 * and the subject's new record, together with what listeners wrote through a transactional
 * store) or release (so impact.com's retry is handled).
 *
 * Postbacks of one subject (or, without one, copies of one key) are applied one after the other
 * in this process: a later one waits, up to the listener timeout, for the earlier one's unit to
 * end, so `ctx.previous` is exact and a copy of a postback being handled becomes a duplicate.
 * Across processes the store keeps them apart.
 *
 * A lifecycle PENDING for an action the journal knows as APPROVED or REVERSED is emitted as
 * `stale` instead (ordering 'final-states'), committed and answered 2xx.
 *
 * When the store and the listeners answer synchronously (the memory and SQLite stores), nothing
 * here waits: no timer is armed, no promise made, and nothing needs tracking.
 */
export function createDeliverer<T>(
  emitter: EventEmitter,
  store: PostbackStore<T>,
  settings: DeliverySettings,
  reportError: (error: PostbackError) => void,
) {
  const { listenerTimeout: timeoutMs, ordering } = settings;
  /** Units in this process that went asynchronous, by subject (by key when there is none). */
  const busy = new Map<string, Promise<void>>();

  function hold(lock: string, ended: Promise<unknown>): void {
    const settled = ended.then(ignore, ignore);
    busy.set(lock, settled);
    void settled.then(() => {
      if (busy.get(lock) === settled) busy.delete(lock);
    });
  }

  /**
   * Delivers one postback. With a synchronous store and listeners the outcome comes back at
   * once, not as a promise, so the answer is written in the same turn of the event loop.
   */
  return function deliver(eventName: string, event: PostbackEvent): Maybe<DeliveryOutcome> {
    const subject = subjectOf(event);
    const lock = subject ?? event.meta.key;
    // Mostly empty: with a synchronous store and listeners no unit ever waits.
    const earlier = busy.size === 0 ? undefined : busy.get(lock);
    if (earlier !== undefined) return deliverAfter(earlier, lock, eventName, event, subject);
    return start(lock, eventName, event, subject);
  };

  /**
   * Waits for the earlier unit of the subject, up to the listener timeout; then begins whatever
   * happened: the store keeps a subject whose unit still runs held (answering 'in-flight'), and
   * frees it once its lease lapses, should a listener never finish.
   */
  async function deliverAfter(
    earlier: Promise<void>,
    lock: string,
    eventName: string,
    event: PostbackEvent,
    subject: string | null,
  ): Promise<DeliveryOutcome> {
    const deadline = Date.now() + timeoutMs;
    // Several may wait for one unit; the first to wake takes the subject, the others wait again.
    for (let waiting: Promise<void> | undefined = earlier; waiting !== undefined; waiting = busy.get(lock)) {
      const left = deadline - Date.now();
      if (left <= 0 || (await withTimeout(waiting, left, TIMED_OUT)) === TIMED_OUT) break;
    }
    return start(lock, eventName, event, subject);
  }

  function start(
    lock: string,
    eventName: string,
    event: PostbackEvent,
    subject: string | null,
  ): Maybe<DeliveryOutcome> {
    let begun: Maybe<BeginResult<T>>;
    try {
      begun = store.begin(event.meta.key, subject);
    } catch (error) {
      return storeUnavailable(error);
    }
    const next = isThenable(begun)
      ? beginLater(Promise.resolve(begun), eventName, event)
      : afterBegin(begun, eventName, event);
    if (!(next instanceof Pending)) return next;
    hold(lock, next.ended);
    return next.answer;
  }

  /** A store that answers later: bounded by the listener timeout; a claim that comes too late is given up. */
  function beginLater(begun: Promise<BeginResult<T>>, eventName: string, event: PostbackEvent): Pending {
    let late = false;
    let ended: Promise<unknown> | undefined;
    const answer = withTimeout(begun, timeoutMs, TIMED_OUT).then(
      (result) => {
        if (result === TIMED_OUT) {
          late = true;
          return storeUnavailable(new Error(`the store did not answer within ${timeoutMs} ms`));
        }
        const next = afterBegin(result, eventName, event);
        if (!(next instanceof Pending)) return next;
        ended = next.ended;
        return next.answer;
      },
      (error: unknown) => storeUnavailable(error),
    );
    void begun.then((result) => {
      if (late && typeof result === 'object') void release(result, 'failed');
    }, ignore);
    return new Pending(
      answer,
      answer.then(() => ended),
    );
  }

  function afterBegin(result: BeginResult<T>, eventName: string, event: PostbackEvent): DeliveryOutcome | Pending {
    if (result === 'handled') return DUPLICATE;
    if (result === 'in-flight') return inFlight();
    if (testHooks.afterClaim === null) return deliverClaimed(result, eventName, event);
    const hooked = testHooks.afterClaim(event.meta.key).then(() => deliverClaimed(result, eventName, event));
    return new Pending(
      hooked.then((next) => (next instanceof Pending ? next.answer : next)),
      hooked.then((next) => (next instanceof Pending ? next.ended : undefined)),
    );
  }

  function deliverClaimed(claim: StoreClaim<T>, eventName: string, event: PostbackEvent): DeliveryOutcome | Pending {
    const stale = isStale(event, claim.previous, ordering);
    const name = stale ? 'stale' : eventName;
    const record = stale ? null : recordOf(event, claim.previous);
    const success = stale ? STALE : DELIVERED;
    if (emitter.listenerCount(name) === 0) {
      // Nobody needs to hear of a stale postback; an unheard delivery would be lost.
      if (stale) return pendingIfAsync(settle(claim, name, [], null, success, event.meta.key));
      const error = new PostbackError('listener.missing', `nothing listens for "${name}" events; retry later`);
      reportError(error);
      return pendingIfAsync(then(release(claim, 'failed'), () => failed(error)));
    }
    const ctx = Object.freeze({ previous: stateOf(event, claim.previous), transaction: claim.transaction });
    const run = runListeners(emitter, name, [event, ctx]);
    if (!(run instanceof Promise)) return pendingIfAsync(settle(claim, name, run, record, success, event.meta.key));
    return listenersLater(claim, name, run, record, success, event.meta.key);
  }

  /**
   * Listeners that answer later, bounded by the listener timeout. Past it the answer is 503: a
   * transactional claim is released at once, so nothing a late listener writes is committed;
   * any other claim is kept until the listeners finish, then committed or released as usual,
   * so a retry meanwhile is not handled a second time.
   */
  function listenersLater(
    claim: StoreClaim<T>,
    name: string,
    run: Promise<unknown[]>,
    record: JournalRecord | null,
    success: DeliveryOutcome,
    key: string,
  ): Pending {
    const raced = withTimeout(run, timeoutMs, TIMED_OUT);
    const answer = raced.then((failures) => {
      if (failures !== TIMED_OUT) return settle(claim, name, failures, record, success, key);
      const error = new PostbackError('listener.timeout', `listeners took longer than ${timeoutMs} ms; retry later`);
      reportError(error);
      if (claim.transactional) return then(release(claim, 'timeout'), () => failed(error));
      return failed(error);
    });
    if (claim.transactional) return new Pending(answer, answer);
    const ended = raced.then((failures) =>
      failures === TIMED_OUT ? run.then((late) => settle(claim, name, late, record, success, key)) : answer,
    );
    return new Pending(answer, ended);
  }

  /** Commits after the listeners succeeded, or releases after one failed; gives the outcome. */
  function settle(
    claim: StoreClaim<T>,
    name: string,
    failures: readonly unknown[],
    record: JournalRecord | null,
    success: DeliveryOutcome,
    key: string,
  ): Maybe<DeliveryOutcome> {
    if (failures.length > 0) {
      for (const failure of failures) {
        reportError(new PostbackError('listener.failed', `a "${name}" listener failed`, { cause: failure }));
      }
      const error = new PostbackError('listener.failed', 'the postback could not be handled; retry later', {
        cause: failures[0],
      });
      return then(release(claim, 'failed'), () => failed(error));
    }
    return then(commit(claim, record), (failure) => {
      if (failure !== null) return failure;
      if (testHooks.afterCommit !== null) return testHooks.afterCommit(key).then(() => success);
      return success;
    });
  }

  /** Null once committed; a failure to answer when a transactional commit failed. */
  function commit(claim: StoreClaim<T>, record: JournalRecord | null): Maybe<DeliveryOutcome | null> {
    let pending: void | Promise<void>;
    try {
      pending = claim.commit(record);
    } catch (error) {
      return commitFailed(claim, error);
    }
    if (!isThenable(pending)) return null;
    return Promise.resolve(pending).then(
      () => null,
      (error: unknown) => commitFailed(claim, error),
    );
  }

  function commitFailed(claim: StoreClaim<T>, cause: unknown): DeliveryOutcome | null {
    const error = new PostbackError('store.failed', 'the store failed to record the postback; retry later', { cause });
    reportError(error);
    // A transactional claim's failed commit undid the listeners' writes: impact.com must retry.
    // Otherwise their work is done, and a retry would do it twice: the answer stays 2xx.
    return claim.transactional ? failed(error) : null;
  }

  /** Releases a claim; a store failure here is reported, and the answer stays what it was. */
  function release(claim: StoreClaim<T>, reason: 'failed' | 'timeout'): Maybe<void> {
    let pending: void | Promise<void>;
    try {
      pending = claim.release(reason);
    } catch (error) {
      reportStoreFailure(error);
      return undefined;
    }
    if (!isThenable(pending)) return undefined;
    return Promise.resolve(pending).then(ignore, reportStoreFailure);
  }

  function reportStoreFailure(cause: unknown): void {
    reportError(new PostbackError('store.failed', 'the store failed to release a postback', { cause }));
  }

  function storeUnavailable(cause: unknown): DeliveryOutcome {
    const error = new PostbackError('store.failed', 'the store is unavailable; retry later', { cause });
    reportError(error);
    return failed(error);
  }

  function inFlight(): DeliveryOutcome {
    return failed(
      new PostbackError('postback.in_flight', 'the same postback or action is being handled right now; retry later'),
    );
  }
}

/** Applies `next` at once to a value, or once a promise of it resolves. */
function then<A, B>(value: Maybe<A>, next: (value: A) => Maybe<B>): Maybe<B> {
  return isThenable(value) ? Promise.resolve(value).then(next) : next(value);
}

function pendingIfAsync(outcome: Maybe<DeliveryOutcome>): DeliveryOutcome | Pending {
  if (!isThenable(outcome)) return outcome;
  const answer = Promise.resolve(outcome);
  return new Pending(answer, answer);
}
