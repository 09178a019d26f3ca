import type { EventEmitter } from 'node:events';
import type { DedupeStore } from '../dedupe/store';
import { PostbackError } from '../errors';
import type { PostbackEvent } from '../events';
import { callListeners, withTimeout } from './call-listeners';
import { testHooks } from './test-hooks';

export type DeliveryOutcome =
  | { readonly kind: 'handled' }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'failed'; readonly error: PostbackError };

const TIMED_OUT = Symbol('timed out');

/**
 * Hands each postback to the host exactly once: claim its key in the store, await every
 * listener, then commit (success) or release (failure, so impact.com's retry is handled).
 *
 * A copy that arrives while the first is still being handled in this process waits for it
 * (up to the listener timeout) and is then answered like a duplicate, or takes over if the
 * first failed. A copy held by another process is answered 503 so impact.com retries later.
 * When listeners run past the timeout the answer is 503, but the claim is kept until they
 * finish, so a retry in the meantime is not handled a second time.
 */
export function createDeliverer(
  emitter: EventEmitter,
  store: DedupeStore,
  timeoutMs: number,
  reportError: (error: PostbackError) => void,
) {
  const settling = new Map<string, Promise<boolean>>();

  async function settle(key: string, failures: unknown[]): Promise<boolean> {
    try {
      if (failures.length === 0) await store.commit(key);
      else await store.release(key);
    } catch (error) {
      // The listeners' work is done (or undone); only the memory of it failed.
      reportError(new PostbackError('store.failed', 'the dedupe store failed to record a postback', { cause: error }));
    }
    return failures.length === 0;
  }

  async function handleClaimed(eventName: string, event: PostbackEvent): Promise<DeliveryOutcome> {
    const { key } = event.meta;
    if (emitter.listenerCount(eventName) === 0) {
      await settle(key, ['no listener']);
      const error = new PostbackError('listener.missing', `nothing listens for "${eventName}" events; retry later`);
      reportError(error);
      return { kind: 'failed', error };
    }
    let failures: unknown[] = [];
    const done = callListeners(emitter, eventName, [event]).then(async (found) => {
      failures = found;
      return settle(key, found);
    });
    settling.set(key, done);
    void done.finally(() => {
      if (settling.get(key) === done) settling.delete(key);
    });

    if ((await withTimeout(done, timeoutMs, TIMED_OUT)) === TIMED_OUT) {
      const error = new PostbackError('listener.timeout', `listeners took longer than ${timeoutMs} ms; retry later`);
      reportError(error);
      return { kind: 'failed', error };
    }
    if (failures.length === 0) {
      if (testHooks.afterCommit !== null) await testHooks.afterCommit(key);
      return { kind: 'handled' };
    }
    for (const failure of failures) {
      reportError(new PostbackError('listener.failed', `a "${eventName}" listener failed`, { cause: failure }));
    }
    const error = new PostbackError('listener.failed', 'the postback could not be handled; retry later', {
      cause: failures[0],
    });
    return { kind: 'failed', error };
  }

  return async function deliver(eventName: string, event: PostbackEvent): Promise<DeliveryOutcome> {
    const { key } = event.meta;
    // Two rounds: a copy that waited for a failed first attempt may claim the key itself.
    for (let round = 0; round < 2; round += 1) {
      let claim;
      try {
        claim = await store.claim(key);
      } catch (error) {
        const failure = new PostbackError('store.failed', 'the dedupe store is unavailable; retry later', {
          cause: error,
        });
        reportError(failure);
        return { kind: 'failed', error: failure };
      }
      if (claim === 'claimed') return handleClaimed(eventName, event);
      if (claim === 'handled') return { kind: 'duplicate' };
      const first = settling.get(key);
      const firstSucceeded = first === undefined ? TIMED_OUT : await withTimeout(first, timeoutMs, TIMED_OUT);
      if (firstSucceeded === true) return { kind: 'duplicate' };
      if (firstSucceeded === TIMED_OUT) break;
    }
    return {
      kind: 'failed',
      error: new PostbackError('postback.in_flight', 'the same postback is being handled right now; retry later'),
    };
  };
}
