import { setTimeout as sleep } from 'node:timers/promises';

/** What a store's claim attempt answers while another process holds the subject. */
export const BUSY = 'busy';

/** First and longest pause between attempts, in ms. */
const PAUSE_MS = { first: 5, longest: 50 };

/**
 * Tries a claim again, with growing pauses, while another process holds its subject, up to
 * `timeoutMs`; then answers 'in-flight' (the router's 503 `postback.in_flight`). For stores that
 * hold subjects with a lease (SQLite, Redis) and so have nothing to wait on but time.
 */
export async function retryWhileBusy<R>(
  attempt: () => R | typeof BUSY | Promise<R | typeof BUSY>,
  timeoutMs: number,
): Promise<R | 'in-flight'> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = PAUSE_MS.first; Date.now() < deadline; pause = Math.min(pause * 2, PAUSE_MS.longest)) {
    await sleep(Math.min(pause, Math.max(1, deadline - Date.now())));
    const result = await attempt();
    if (result !== BUSY) return result;
  }
  return 'in-flight';
}
