import type { EventEmitter } from 'node:events';

type Listener = (...args: unknown[]) => unknown;

/** True for a promise or any other thenable a listener or store may return. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Calls every listener of an event, sync or async. Unlike EventEmitter#emit, a listener that
 * throws does not skip the ones after it, and a rejected promise is collected instead of
 * becoming an unhandled rejection (which ends the process). Gives the failures, empty when
 * every listener succeeded: at once when every listener returned synchronously (no promise or
 * timer is needed then), else as a promise that settles when the last one has.
 */
export function runListeners(
  emitter: EventEmitter,
  eventName: string,
  args: readonly unknown[],
): unknown[] | Promise<unknown[]> {
  // rawListeners keeps `once` wrappers, so calling them removes them as emit would.
  const listeners = emitter.rawListeners(eventName) as Listener[];
  const failures: unknown[] = [];
  let pending: Promise<void>[] | null = null;
  for (const listener of listeners) {
    try {
      const result = listener.apply(emitter, args as unknown[]);
      if (isThenable(result)) {
        pending ??= [];
        pending.push(
          Promise.resolve(result).then(
            () => undefined,
            (error: unknown) => {
              failures.push(error);
            },
          ),
        );
      }
    } catch (error) {
      // Reading a thenable's `then` may throw too; either way it is this listener's failure.
      failures.push(error);
    }
  }
  if (pending === null) return failures;
  return Promise.all(pending).then(() => failures);
}

/** runListeners, always as a promise: for notifications nobody waits on. */
export async function callListeners(
  emitter: EventEmitter,
  eventName: string,
  args: readonly unknown[],
): Promise<unknown[]> {
  return runListeners(emitter, eventName, args);
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
