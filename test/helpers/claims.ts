import type { BeginResult, StoreClaim } from '../../lib';

/** Runs `work` and gives what it threw or rejected with (some claims' methods throw synchronously). */
export async function failureOf(work: () => unknown): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected it to fail');
}

/** The claim a store's begin answered, or a failure naming what it answered instead. */
export function claimOf<C>(result: BeginResult<C>): StoreClaim<C> {
  if (typeof result === 'string') throw new Error(`no claim: ${result}`);
  return result;
}
