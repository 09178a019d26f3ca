/**
 * The time the stores and the inbox read for leases, expiry and backoff. Tests move it (a lease
 * lapsing, a retry coming due) without waiting; nothing else should. Not exported from the
 * package entry. Waits (timeouts, pauses between attempts) run on real time.
 */
export const clock = { now: (): number => Date.now() };
