import type { EventEmitter } from 'node:events';
import { PostbackError, routerClosed } from '../errors';
import type { PostbackEvent } from '../events';
import { subjectOf } from '../journal/journal';
import type { BeginResult, PostbackStore } from '../stores/store';
import {
  createClaimApplier,
  DUPLICATE,
  failed,
  ignore,
  Pending,
  TIMED_OUT,
  type DeliveryOutcome,
  type DeliverySettings,
  type Maybe,
} from './apply-claim';
import { isThenable, withTimeout } from './call-listeners';
import { callStore } from './store-call';
import type { ClaimUnits } from './claim-unit';
import { testHooks } from './test-hooks';

/**
 * Direct delivery: the request waits while its postback is handled, as one unit of work the
 * store opens (`store.begin`: claim its key and its subject, the action or inquiry, and read the
 * journal), then delivered by the claim applier, and is answered by the outcome: 2xx once
 * committed, 5xx once released (so impact.com's retry is handled).
 *
 * Postbacks of one subject (or, without one, copies of one key) are applied one after the other
 * in this process: a later one waits, up to the listener timeout, for the earlier one's unit to
 * end, so `ctx.previous` is exact and a copy of a postback being handled becomes a duplicate.
 * Across processes the store keeps them apart.
 *
 * When the store and the listeners answer synchronously (the memory and SQLite stores), nothing
 * here waits: no timer is armed, no promise made, and nothing needs tracking.
 */
export function createDirectDelivery<T>(
  emitter: EventEmitter,
  store: PostbackStore<T>,
  settings: DeliverySettings,
  reportError: (error: PostbackError) => void,
  units: ClaimUnits,
  /** Aborted when close() starts. */
  stopped: AbortSignal,
) {
  const timeoutMs = settings.listenerTimeout;
  const deliverClaimed = createClaimApplier<T>(emitter, settings, reportError, units);
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
   * `readKey`, for reconciliation: the key of the journal record its comparison read, which the
   * claim must find unchanged.
   */
  return function deliver(eventName: string, event: PostbackEvent, readKey?: string | null): Maybe<DeliveryOutcome> {
    const subject = subjectOf(event);
    const lock = subject ?? event.meta.key;
    // Mostly empty: with a synchronous store and listeners no unit ever waits.
    const earlier = busy.size === 0 ? undefined : busy.get(lock);
    if (earlier !== undefined) return deliverAfter(earlier, lock, eventName, event, subject, readKey);
    return start(lock, eventName, event, subject, readKey);
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
    readKey: string | null | undefined,
  ): Promise<DeliveryOutcome> {
    const deadline = Date.now() + timeoutMs;
    // Several may wait for one unit; the first to wake takes the subject, the others wait again.
    for (let waiting: Promise<void> | undefined = earlier; waiting !== undefined; waiting = busy.get(lock)) {
      const left = deadline - Date.now();
      if (left <= 0 || (await withTimeout(waiting, left, TIMED_OUT)) === TIMED_OUT) break;
    }
    return start(lock, eventName, event, subject, readKey);
  }

  function start(
    lock: string,
    eventName: string,
    event: PostbackEvent,
    subject: string | null,
    readKey: string | null | undefined,
  ): Maybe<DeliveryOutcome> {
    // A postback that waited (its body, or an earlier unit of its subject) past the start of
    // close() is not begun: the store is closing, and nothing would wait for this unit.
    if (stopped.aborted) return failed(routerClosed());
    let begun: Maybe<BeginResult<T>>;
    try {
      begun = store.begin(event.meta.key, subject);
    } catch (error) {
      return storeUnavailable(error);
    }
    const next = isThenable(begun)
      ? beginLater(Promise.resolve(begun), eventName, event, readKey)
      : afterBegin(begun, eventName, event, readKey);
    if (!(next instanceof Pending)) return next;
    hold(lock, next.ended);
    return next.answer;
  }

  /** A store that answers later: bounded by the listener timeout; a claim that comes too late is given up. */
  function beginLater(
    begun: Promise<BeginResult<T>>,
    eventName: string,
    event: PostbackEvent,
    readKey: string | null | undefined,
  ): Pending {
    let late = false;
    let ended: Promise<DeliveryOutcome> | undefined;
    const answer = withTimeout(begun, timeoutMs, TIMED_OUT).then(
      (result) => {
        if (result === TIMED_OUT) {
          late = true;
          return storeUnavailable(new Error(`the store did not answer within ${timeoutMs} ms`));
        }
        // close() started while the store answered: it may have given this postback up and
        // closed the store already, and waits for no unit begun now.
        if (stopped.aborted && typeof result === 'object') {
          return callStore(() => result.release('failed')).then(
            () => failed(routerClosed()),
            () => failed(routerClosed()),
          );
        }
        const next = afterBegin(result, eventName, event, readKey);
        if (!(next instanceof Pending)) return next;
        ended = next.ended;
        return next.answer;
      },
      (error: unknown) => storeUnavailable(error),
    );
    void begun.then((result) => {
      if (late && typeof result === 'object') void callStore(() => result.release('failed')).catch(ignore);
    }, ignore);
    return new Pending(
      answer,
      answer.then((outcome) => ended ?? outcome),
    );
  }

  function afterBegin(
    result: BeginResult<T>,
    eventName: string,
    event: PostbackEvent,
    readKey: string | null | undefined,
  ): DeliveryOutcome | Pending {
    if (result === 'handled') return DUPLICATE;
    if (result === 'in-flight') return inFlight();
    if (testHooks.afterClaim === null) return deliverClaimed(result, eventName, event, readKey);
    const hooked = testHooks.afterClaim(event.meta.key).then(() => deliverClaimed(result, eventName, event, readKey));
    return new Pending(
      hooked.then((next) => (next instanceof Pending ? next.answer : next)),
      hooked.then((next) => (next instanceof Pending ? next.ended : next)),
    );
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
