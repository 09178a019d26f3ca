/**
 * Calls a store's method for a promise of its answer. A store may answer synchronously, and a
 * synchronous one (better-sqlite3, a custom store) fails by throwing: called from a timer or a
 * `then` callback nobody awaits, that throw would escape to the process. Here it becomes the
 * promise's rejection, for the caller to handle as any other failure.
 */
export function callStore<R>(call: () => R | PromiseLike<R>): Promise<R> {
  return new Promise<R>((resolve) => {
    resolve(call());
  });
}
