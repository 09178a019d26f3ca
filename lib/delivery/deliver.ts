import type { EventEmitter } from 'node:events';
import type { ClaimResult, DedupeStore } from '../dedupe/store';
import { PostbackError } from '../errors';
import type { PostbackEvent } from '../events';
import { isThenable, runListeners, withTimeout } from './call-listeners';
import { testHooks } from './test-hooks';

export type DeliveryOutcome =
  | { readonly kind: 'handled' }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'failed'; readonly error: PostbackError };

const TIMED_OUT = Symbol('timed out');
const HANDLED: DeliveryOutcome = Object.freeze({ kind: 'handled' });
const DUPLICATE: DeliveryOutcome = Object.freeze({ kind: 'duplicate' });

/**
 * Hands each postback to the host exactly once: claim its key in the store, await every
 * listener, then commit (success) or release (failure, so impact.com's retry is handled).
 *
 * A copy that arrives while the first is still being handled in this process waits for it
 * (up to the listener timeout) and is then answered like a duplicate, or takes over if the
 * first failed. A copy held by another process is answered 503 so impact.com retries later.
 * When listeners run past the timeout the answer is 503, but the claim is kept until they
 * finish, so a retry in the meantime is not handled a second time.
 *
 * When the listeners return synchronously and the store answers synchronously (the memory and
 * SQLite stores), nothing here waits: no timer is armed and no other request can run between
 * claim and commit, so nothing needs tracking either.
 */
export function createDeliverer(
  emitter: EventEmitter,
  store: DedupeStore,
  timeoutMs: number,
  reportError: (error: PostbackError) => void,
) {
  /** Keys being handled in this process, with whether their listeners succeeded. */
  const settling = new Map<string, Promise<boolean>>();

  function reportStoreFailure(error: unknown): void {
    // The listeners' work is done (or undone); only the memory of it failed.
    reportError(new PostbackError('store.failed', 'the dedupe store failed to record a postback', { cause: error }));
  }

  /** Commits or releases the key; gives whether the listeners succeeded. */
  function settle(key: string, failures: readonly unknown[]): boolean | Promise<boolean> {
    const succeeded = failures.length === 0;
    let pending: void | Promise<void>;
    try {
      pending = succeeded ? store.commit(key) : store.release(key);
    } catch (error) {
      reportStoreFailure(error);
      return succeeded;
    }
    if (!isThenable(pending)) return succeeded;
    return Promise.resolve(pending).then(
      () => succeeded,
      (error: unknown) => {
        reportStoreFailure(error);
        return succeeded;
      },
    );
  }

  /** Lets a copy arriving meanwhile wait for the first to settle. */
  function track(key: string, done: Promise<boolean>): void {
    settling.set(key, done);
    void done.finally(() => {
      if (settling.get(key) === done) settling.delete(key);
    });
  }

  function outcomeOf(
    eventName: string,
    key: string,
    failures: readonly unknown[],
  ): DeliveryOutcome | Promise<DeliveryOutcome> {
    if (failures.length === 0) {
      if (testHooks.afterCommit !== null) return testHooks.afterCommit(key).then(() => HANDLED);
      return HANDLED;
    }
    for (const failure of failures) {
      reportError(new PostbackError('listener.failed', `a "${eventName}" listener failed`, { cause: failure }));
    }
    const error = new PostbackError('listener.failed', 'the postback could not be handled; retry later', {
      cause: failures[0],
    });
    return { kind: 'failed', error };
  }

  async function refuseUnheard(eventName: string, key: string): Promise<DeliveryOutcome> {
    await settle(key, ['no listener']);
    const error = new PostbackError('listener.missing', `nothing listens for "${eventName}" events; retry later`);
    reportError(error);
    return { kind: 'failed', error };
  }

  function handleClaimed(eventName: string, event: PostbackEvent): DeliveryOutcome | Promise<DeliveryOutcome> {
    const { key } = event.meta;
    if (emitter.listenerCount(eventName) === 0) return refuseUnheard(eventName, key);
    const run = runListeners(emitter, eventName, [event]);
    if (!(run instanceof Promise)) {
      const settled = settle(key, run);
      if (typeof settled === 'boolean') return outcomeOf(eventName, key, run);
      track(key, settled);
      return settled.then(() => outcomeOf(eventName, key, run));
    }
    let failures: unknown[] = [];
    const done = run.then((found) => {
      failures = found;
      return settle(key, found);
    });
    track(key, done);
    return withTimeout(done, timeoutMs, TIMED_OUT).then((result) => {
      if (result !== TIMED_OUT) return outcomeOf(eventName, key, failures);
      const error = new PostbackError('listener.timeout', `listeners took longer than ${timeoutMs} ms; retry later`);
      reportError(error);
      return { kind: 'failed', error };
    });
  }

  function storeUnavailable(error: unknown): DeliveryOutcome {
    const failure = new PostbackError('store.failed', 'the dedupe store is unavailable; retry later', { cause: error });
    reportError(failure);
    return { kind: 'failed', error: failure };
  }

  /**
   * Delivers one postback. With a synchronous store and listeners the outcome comes back at
   * once, not as a promise, so the answer is written in the same turn of the event loop.
   */
  return function deliver(eventName: string, event: PostbackEvent): DeliveryOutcome | Promise<DeliveryOutcome> {
    let claim: ClaimResult | Promise<ClaimResult>;
    try {
      claim = store.claim(event.meta.key);
    } catch (error) {
      return storeUnavailable(error);
    }
    if (claim === 'claimed') return handleClaimed(eventName, event);
    if (claim === 'handled') return DUPLICATE;
    return deliverContended(eventName, event, claim);
  };

  /** The key is held elsewhere, or the store answers asynchronously. */
  async function deliverContended(
    eventName: string,
    event: PostbackEvent,
    firstClaim: ClaimResult | Promise<ClaimResult>,
  ): Promise<DeliveryOutcome> {
    const { key } = event.meta;
    // Two rounds: a copy that waited for a failed first attempt may claim the key itself.
    for (let round = 0; round < 2; round += 1) {
      let claim: ClaimResult;
      try {
        claim = await (round === 0 ? firstClaim : store.claim(key));
      } catch (error) {
        return storeUnavailable(error);
      }
      if (claim === 'claimed') return handleClaimed(eventName, event);
      if (claim === 'handled') return DUPLICATE;
      const first = settling.get(key);
      const firstSucceeded = first === undefined ? TIMED_OUT : await withTimeout(first, timeoutMs, TIMED_OUT);
      if (firstSucceeded === true) return DUPLICATE;
      if (firstSucceeded === TIMED_OUT) break;
    }
    return {
      kind: 'failed',
      error: new PostbackError('postback.in_flight', 'the same postback is being handled right now; retry later'),
    };
  }
}
