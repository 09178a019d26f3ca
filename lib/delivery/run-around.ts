/**
 * Runs `work` through `wrapper`, which should call it once and give back what it gives (as
 * OpenTelemetry's `context.with` does), and makes sure the wrapper changes nothing else: one
 * that throws before calling `work`, or never calls it, has `work` run directly; one that throws
 * after `work` returned gives back work's result all the same. Only work's own throw goes on.
 * `failed` hears of each failure of the wrapper.
 *
 * Why: a delivery that ran must count as run. Had the wrapper's throw after a delivery gone on,
 * the inbox would record a delivered row as failed and deliver it again.
 */
export function runAround<R>(wrapper: (work: () => R) => unknown, work: () => R, failed: (error: unknown) => void): R {
  // Set by `tracked`, which the wrapper calls: an object, as the compiler follows no closure's writes.
  const seen: { state: 'waiting' | 'returned' | 'threw'; result?: R; thrown?: unknown } = { state: 'waiting' };
  const tracked = (): R => {
    try {
      const result = work();
      seen.result = result;
      seen.state = 'returned';
      return result;
    } catch (error) {
      seen.thrown = error;
      seen.state = 'threw';
      throw error;
    }
  };
  try {
    wrapper(tracked);
  } catch (error) {
    if (seen.state === 'threw' && error === seen.thrown) throw error;
    failed(error);
    if (seen.state === 'waiting') return work();
  }
  if (seen.state === 'waiting') {
    failed(new Error('the wrapper did not run the work'));
    return work();
  }
  if (seen.state === 'threw') throw seen.thrown;
  return seen.result as R;
}
