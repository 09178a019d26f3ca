import { setTimeout as sleep } from 'node:timers/promises';

/** Waits until `check` holds, looking every 10 ms, up to `ms`; then throws. */
export async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting`);
    await sleep(10);
  }
}
