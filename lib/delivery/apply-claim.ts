import type { EventEmitter } from 'node:events';
import { PostbackError } from '../errors';
import type { PostbackEvent } from '../events';
import { isAlreadyApplied, isStale, recordOf, stateOf, type Ordering } from '../journal/journal';
import type { CommitOutcome, JournalRecord, StoreClaim } from '../stores/store';
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

export type Maybe<T> = T | Promise<T>;

export const TIMED_OUT = Symbol('timed out');
export const DELIVERED: DeliveryOutcome = Object.freeze({ kind: 'delivered' });
export const DUPLICATE: DeliveryOutcome = Object.freeze({ kind: 'duplicate' });
export const STALE: DeliveryOutcome = Object.freeze({ kind: 'stale' });

/**
 * A delivery that went asynchronous: `answer` settles when the sender can be answered, `ended`
 * when the store's claim is committed or released, with what that final outcome was. It is
 * later than the answer when listeners of a store without transactions run past the timeout:
 * their work is being done, so the claim is kept until they finish, then committed or released.
 */
export class Pending {
  constructor(
    readonly answer: Promise<DeliveryOutcome>,
    readonly ended: Promise<DeliveryOutcome>,
  ) {}
}

export function failed(error: PostbackError): DeliveryOutcome {
  return { kind: 'failed', error };
}

export function ignore(): void {
  // A promise whose outcome is reported elsewhere.
}

/**
 * Delivers one claimed postback, whichever way it came (a request answered directly, or a row
 * of the inbox): runs the listeners with `(event, { previous, transaction })`, then commits the
 * claim (the key, the subject's new record and what listeners wrote through a transactional
 * store) or releases it. A lifecycle PENDING for an action the journal knows as APPROVED or
 * REVERSED is emitted as `stale` instead (ordering 'final-states'), and committed. A lifecycle
 * postback whose state reconciliation has delivered already is not emitted: it is committed as
 * a duplicate, the journal left as it is.
 *
 * With synchronous listeners and a synchronous store the outcome comes back at once.
 */
export function createClaimApplier<T>(
  emitter: EventEmitter,
  settings: DeliverySettings,
  reportError: (error: PostbackError) => void,
) {
  const { listenerTimeout: timeoutMs, ordering } = settings;

  function deliverClaimed(claim: StoreClaim<T>, eventName: string, event: PostbackEvent): DeliveryOutcome | Pending {
    if (isAlreadyApplied(event, claim.previous)) {
      return pendingIfAsync(settle(claim, eventName, [], null, DUPLICATE, event.meta.key));
    }
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
    const outcome = success.kind === 'stale' || success.kind === 'duplicate' ? success.kind : 'delivered';
    return then(commit(claim, record, outcome), (failure) => {
      if (failure !== null) return failure;
      if (testHooks.afterCommit !== null) return testHooks.afterCommit(key).then(() => success);
      return success;
    });
  }

  /** Null once committed; a failure to answer when a transactional commit failed. */
  function commit(
    claim: StoreClaim<T>,
    record: JournalRecord | null,
    outcome: CommitOutcome,
  ): Maybe<DeliveryOutcome | null> {
    let pending: void | Promise<void>;
    try {
      pending = claim.commit(record, outcome);
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

  return deliverClaimed;
}

/** Applies `next` at once to a value, or once a promise of it resolves. */
export function then<A, B>(value: Maybe<A>, next: (value: A) => Maybe<B>): Maybe<B> {
  return isThenable(value) ? Promise.resolve(value).then(next) : next(value);
}

export function pendingIfAsync(outcome: Maybe<DeliveryOutcome>): DeliveryOutcome | Pending {
  if (!isThenable(outcome)) return outcome;
  const answer = Promise.resolve(outcome);
  return new Pending(answer, answer);
}
