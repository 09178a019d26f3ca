import type { EventEmitter } from 'node:events';

type Listener = (...args: unknown[]) => unknown;

/**
 * Calls every listener of an event and waits for all of them, sync or async. Unlike
 * EventEmitter#emit, a listener that throws does not skip the ones after it, and a rejected
 * promise is collected instead of becoming an unhandled rejection (which ends the process).
 * Resolves with the failures, empty when every listener succeeded.
 */
export async function callListeners(
  emitter: EventEmitter,
  eventName: string,
  args: readonly unknown[],
): Promise<unknown[]> {
  // rawListeners keeps `once` wrappers, so calling them removes them as emit would.
  const listeners = emitter.rawListeners(eventName) as Listener[];
  // The Promise executor turns a synchronous throw into a rejection like any other.
  const runs = listeners.map(
    (listener) =>
      new Promise((resolve) => {
        resolve(listener.apply(emitter, [...args]));
      }),
  );
  const results = await Promise.allSettled(runs);
  return results.flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
}

/** Resolves with the promise's value, or with `timedOut` after `ms`; never leaves a timer behind. */
export function withTimeout<T, U>(promise: Promise<T>, ms: number, timedOut: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<U>((resolve) => {
    timer = setTimeout(() => {
      resolve(timedOut);
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
  });
}
