import type { EventEmitter } from 'node:events';
import { PostbackError } from '../errors';
import type { PostbackEvent } from '../events';
import type { NewHistoryEntry } from '../history/history-entry';
import { isAlreadyApplied, isStale, reachesFinalState, recordOf, type Ordering } from '../journal/journal';
import { isClaimLost } from '../stores/claim-lost';
import type { CommitOutcome, JournalRecord, StoreClaim } from '../stores/store';
import { isThenable, runListeners } from './call-listeners';
import { ABANDONED, ClaimUnit, type ClaimUnits } from './claim-unit';
import { deliveryContext } from './delivery-context';
import { listenerFailure } from './listener-failure';
import { testHooks } from './test-hooks';

export type DeliveryOutcome =
  | { readonly kind: 'delivered' }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'stale' }
  /** Reconciliation: the journal changed between the page being read and the claim. */
  | { readonly kind: 'overtaken' }
  | { readonly kind: 'failed'; readonly error: PostbackError };

export interface DeliverySettings {
  /** How long listeners (and the store's begin and commit) may take before the answer is 503, in ms. */
  readonly listenerTimeout: number;
  readonly ordering: Ordering;
  /** The router's tokens, kept out of the messages it reports. */
  readonly tokens: readonly string[];
  /**
   * The history entry a commit of this event writes with it, when the store's history is
   * written with commits and the event is a postback being answered; undefined otherwise.
   */
  readonly committedEntry?: (event: PostbackEvent, outcome: CommitOutcome | 'stored') => NewHistoryEntry | undefined;
}

export type Maybe<T> = T | Promise<T>;

/**
 * With a store whose claims are not transactions, listeners still running this many listener
 * timeouts after they started are given up: their claim is released (another delivery may run
 * them again; their late writes are not recorded) and `ctx.signal` aborts.
 */
export const GIVE_UP_AFTER_TIMEOUTS = 10;
/** A failed commit of a claim whose listeners' work is done is tried again after these pauses, in ms. */
const RECOMMIT_PAUSE_MS = { first: 100, longest: 5000 };

export const TIMED_OUT = Symbol('timed out');
export const DELIVERED: DeliveryOutcome = Object.freeze({ kind: 'delivered' });
export const DUPLICATE: DeliveryOutcome = Object.freeze({ kind: 'duplicate' });
export const STALE: DeliveryOutcome = Object.freeze({ kind: 'stale' });
export const OVERTAKEN: DeliveryOutcome = Object.freeze({ kind: 'overtaken' });

/**
 * A delivery that went asynchronous: `answer` settles when the sender can be answered, `ended`
 * when the store's claim is committed or released, with what that final outcome was. It is
 * later than the answer when the store's claims are not transactions and their listeners ran
 * past the timeout (their work is being done, so the claim is kept until they finish), or the
 * commit failed (their work is done, so the commit is tried again until it lands).
 */
export class Pending {
  constructor(
    readonly answer: Promise<DeliveryOutcome>,
    readonly ended: Promise<DeliveryOutcome>,
  ) {}
}

/** A claim, and for an inbox row whether a later postback of its action was delivered already. */
export type ApplicableClaim<T> = StoreClaim<T> & { readonly superseded?: boolean };

export function failed(error: PostbackError): DeliveryOutcome {
  return { kind: 'failed', error };
}

export function ignore(): void {
  // A promise whose outcome is reported elsewhere.
}

/** The key of the journal record a claim read: what reconciliation compared impact.com's state with. */
export function readKeyOf(record: JournalRecord | null): string | null {
  const key = record?.['key'];
  return typeof key === 'string' ? key : null;
}

/**
 * Delivers one claimed postback, whichever way it came (a request answered directly, a row of
 * the inbox, reconciliation): runs the listeners with `(event, ctx)`, then commits the claim
 * (the key, the subject's new record and what listeners wrote through a transactional store)
 * or releases it. Decided under the claim, from the journal's record the claim read:
 * - a lifecycle PENDING for an action the journal knows as APPROVED or REVERSED, an inquiry's
 *   creation for one it knows as resolved, or an inbox row retried after a later postback of its
 *   action was delivered, is emitted as `stale` (ordering 'final-states'), and committed with the
 *   journal left as it is;
 * - a lifecycle postback whose state reconciliation delivered already is not emitted: it is
 *   committed as a duplicate, the journal left as it is;
 * - a reconciled action (`readKey` given) whose journal record changed since reconciliation read
 *   it is not delivered: a postback came in between, and the next run compares again.
 *
 * With synchronous listeners and a synchronous store the outcome comes back at once, and no
 * timer or promise is made.
 */
export function createClaimApplier<T>(
  emitter: EventEmitter,
  settings: DeliverySettings,
  reportError: (error: PostbackError) => void,
  units: ClaimUnits,
) {
  const { listenerTimeout: timeoutMs, ordering } = settings;
  const giveUpMs = GIVE_UP_AFTER_TIMEOUTS * timeoutMs;
  const renewFailed = (cause: unknown): void => {
    reportError(new PostbackError('store.failed', 'the store failed to renew a claim', { cause }));
  };

  function deliverClaimed(
    claim: ApplicableClaim<T>,
    eventName: string,
    event: PostbackEvent,
    readKey?: string | null,
  ): DeliveryOutcome | Pending {
    const unit = new ClaimUnit(claim, units, renewFailed);
    if (readKey !== undefined && readKeyOf(claim.previous) !== readKey) {
      return pendingIfAsync(then(release(claim, 'failed'), () => OVERTAKEN));
    }
    if (isAlreadyApplied(event, claim.previous)) return tracked(unit, commitClaim(claim, unit, null, DUPLICATE, event));
    // A row overtaken by a later one never moves the action back, but a move into a final state is
    // never back, so long as the journal still knows the state it moves from (a forgotten record
    // may have been final).
    const overtaken =
      claim.superseded === true && (claim.previous === null || !reachesFinalState(event, claim.previous));
    const stale = isStale(event, claim.previous, ordering) || (ordering !== 'none' && overtaken);
    const name = stale ? 'stale' : eventName;
    if (emitter.listenerCount(name) === 0) {
      // Nobody needs to hear of a stale postback; an unheard delivery would be lost.
      if (stale) return tracked(unit, commitClaim(claim, unit, null, STALE, event));
      const error = new PostbackError('listener.missing', `nothing listens for "${name}" events; retry later`);
      reportError(error);
      return pendingIfAsync(then(release(claim, 'failed'), () => failed(error)));
    }
    const record = stale ? null : recordOf(event, claim.previous);
    const success = stale ? STALE : DELIVERED;
    const run = runListeners(emitter, name, [event, deliveryContext(event, claim, unit)]);
    if (!(run instanceof Promise)) return tracked(unit, settle(claim, unit, name, run, record, success, event));
    return tracked(unit, listenersLater(claim, unit, name, run, record, success, event));
  }

  /** A delivery that went asynchronous is known to close() until it ended; its renewal stops then. */
  function tracked(unit: ClaimUnit, outcome: DeliveryOutcome | Pending): DeliveryOutcome | Pending {
    if (!(outcome instanceof Pending)) return outcome;
    const ended = outcome.ended.finally(() => {
      unit.stop();
    });
    units.add(unit, ended);
    return new Pending(outcome.answer, ended);
  }

  /**
   * Listeners that answer later, bounded by the listener timeout, the claim renewed meanwhile.
   * Past it the answer is 503: a transactional claim is released at once, so nothing a late
   * listener writes is committed; any other claim is kept until the listeners finish, then
   * committed or released as usual, so that a retry meanwhile is not handled a second time; up
   * to the give-up bound, when it is released.
   */
  function listenersLater(
    claim: StoreClaim<T>,
    unit: ClaimUnit,
    name: string,
    run: Promise<unknown[]>,
    record: JournalRecord | null,
    success: DeliveryOutcome,
    event: PostbackEvent,
  ): Pending {
    unit.keepAlive();
    const raced = unit
      .wait(run, timeoutMs, TIMED_OUT, true)
      .then((failures) =>
        failures === TIMED_OUT || failures === ABANDONED
          ? failures
          : settle(claim, unit, name, failures, record, success, event),
      );
    const timedOut = (): PostbackError => {
      const error = new PostbackError('listener.timeout', `listeners took longer than ${timeoutMs} ms; retry later`);
      reportError(error);
      return error;
    };
    if (claim.transactional) {
      const result = raced.then((settled) => {
        if (settled !== TIMED_OUT && settled !== ABANDONED) return settled;
        const error = settled === ABANDONED ? closed() : timedOut();
        unit.abandon();
        return then(release(claim, 'timeout'), () => failed(error));
      });
      return new Pending(result.then(answerOf), result.then(endOf));
    }
    const answer = raced.then((settled) =>
      settled === TIMED_OUT ? failed(timedOut()) : settled === ABANDONED ? failed(closed()) : answerOf(settled),
    );
    const ended = raced.then((settled) => {
      if (settled === ABANDONED) return giveUp(claim, unit, closed());
      if (settled !== TIMED_OUT) return endOf(settled);
      return unit.wait(run, giveUpMs - timeoutMs, TIMED_OUT).then((late) => {
        if (late === ABANDONED) return giveUp(claim, unit, closed());
        if (late === TIMED_OUT) {
          const error = new PostbackError(
            'listener.timeout',
            `listeners still ran ${giveUpMs} ms after they started; given up`,
          );
          reportError(error);
          return giveUp(claim, unit, error);
        }
        return endOf(settle(claim, unit, name, late, record, success, event));
      });
    });
    return new Pending(answer, ended);
  }

  /** Listeners that never finished: their claim is let go, and their signal aborts. */
  function giveUp(claim: StoreClaim<T>, unit: ClaimUnit, error: PostbackError): Maybe<DeliveryOutcome> {
    unit.abandon();
    return then(release(claim, 'timeout'), () => failed(error));
  }

  /** Commits after the listeners succeeded, or releases after one failed. */
  function settle(
    claim: StoreClaim<T>,
    unit: ClaimUnit,
    name: string,
    failures: readonly unknown[],
    record: JournalRecord | null,
    success: DeliveryOutcome,
    event: PostbackEvent,
  ): DeliveryOutcome | Pending {
    if (failures.length > 0) {
      for (const failure of failures) {
        reportError(listenerFailure(name, failure, settings.tokens));
      }
      const error = new PostbackError('listener.failed', 'the postback could not be handled; retry later', {
        cause: failures[0],
      });
      return pendingIfAsync(then(release(claim, 'failed'), () => failed(error)));
    }
    return commitClaim(claim, unit, record, success, event);
  }

  /**
   * Commits the claim. The answer waits for the commit up to the listener timeout: 2xx once it
   * landed, 503 when it failed or did not answer in time. A transactional claim's failed commit
   * undid the listeners' writes, and impact.com's retry does them again. Any other claim's
   * listeners have done their work: its commit is tried again, the claim held and renewed, until
   * it lands (a retry of the postback meanwhile finds the action held, then handled), another
   * claim takes it over, or the router closes.
   */
  function commitClaim(
    claim: StoreClaim<T>,
    unit: ClaimUnit,
    record: JournalRecord | null,
    success: DeliveryOutcome,
    event: PostbackEvent,
  ): DeliveryOutcome | Pending {
    const key = event.meta.key;
    const outcome: CommitOutcome =
      success.kind === 'stale' || success.kind === 'duplicate' ? success.kind : 'delivered';
    const entry = settings.committedEntry?.(event, outcome);
    let pending: void | Promise<void>;
    try {
      pending = entry === undefined ? claim.commit(record, outcome) : claim.commit(record, outcome, entry);
    } catch (error) {
      const answer = failedCommit(error);
      if (claim.transactional || isClaimLost(error)) return answer;
      return new Pending(Promise.resolve(answer), recommit(claim, unit, record, outcome, success, entry));
    }
    if (!isThenable(pending)) return pendingIfAsync(afterCommit(success, key));
    const landed = Promise.resolve(pending).then(
      () => null,
      (error: unknown) => ({ error }),
    );
    const answer = unit.wait(landed, timeoutMs, TIMED_OUT, true).then((result) => {
      if (result === null) return afterCommit(success, key);
      if (result === ABANDONED) return failed(closed());
      return failedCommit(
        result === TIMED_OUT ? new Error(`the store did not commit within ${timeoutMs} ms`) : result.error,
      );
    });
    const ended = landed.then((result) => {
      if (result === null) return success;
      if (claim.transactional || isClaimLost(result.error)) return failedCommit(result.error);
      return recommit(claim, unit, record, outcome, success, entry);
    });
    return new Pending(answer, ended);
  }

  async function recommit(
    claim: StoreClaim<T>,
    unit: ClaimUnit,
    record: JournalRecord | null,
    outcome: CommitOutcome,
    success: DeliveryOutcome,
    entry: NewHistoryEntry | undefined,
  ): Promise<DeliveryOutcome> {
    unit.keepAlive();
    for (let pause = RECOMMIT_PAUSE_MS.first; ; pause = Math.min(pause * 2, RECOMMIT_PAUSE_MS.longest)) {
      if ((await unit.wait(new Promise(ignore), pause, TIMED_OUT)) === ABANDONED) {
        // The router closes: the claim lapses, and its postback is delivered again (ctx.idempotencyKey).
        return failed(closed());
      }
      try {
        await (entry === undefined ? claim.commit(record, outcome) : claim.commit(record, outcome, entry));
        return success;
      } catch (error) {
        const problem = failedCommit(error);
        if (isClaimLost(error)) return problem;
      }
    }
  }

  function afterCommit(success: DeliveryOutcome, key: string): Maybe<DeliveryOutcome> {
    if (testHooks.afterCommit !== null) return testHooks.afterCommit(key).then(() => success);
    return success;
  }

  function failedCommit(cause: unknown): DeliveryOutcome {
    const error = isClaimLost(cause)
      ? new PostbackError('store.failed', 'another delivery took this postback over; retry later', { cause })
      : new PostbackError('store.failed', 'the store failed to record the postback; retry later', { cause });
    reportError(error);
    return failed(error);
  }

  function closed(): PostbackError {
    return new PostbackError('router.closed', 'this receiver shut down while the postback was handled; retry later');
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

function answerOf(outcome: DeliveryOutcome | Pending): Promise<DeliveryOutcome> | DeliveryOutcome {
  return outcome instanceof Pending ? outcome.answer : outcome;
}

function endOf(outcome: DeliveryOutcome | Pending): Promise<DeliveryOutcome> | DeliveryOutcome {
  return outcome instanceof Pending ? outcome.ended : outcome;
}

/** Applies `next` at once to a value, or once a promise of it resolves. */
export function then<A, B>(value: Maybe<A>, next: (value: A) => Maybe<B>): Maybe<B> {
  return isThenable(value) ? Promise.resolve(value).then(next) : next(value);
}

export function pendingIfAsync(outcome: Maybe<DeliveryOutcome> | Pending): DeliveryOutcome | Pending {
  if (outcome instanceof Pending) return outcome;
  if (!isThenable(outcome)) return outcome;
  const answer = Promise.resolve(outcome);
  return new Pending(answer, answer);
}
