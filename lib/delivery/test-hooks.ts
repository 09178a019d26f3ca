/**
 * A seam for the crash tests, which must kill the process at an exact moment rather than
 * guess it with timers. Not exported from the package entry; null in normal use.
 */
export const testHooks: { afterCommit: ((key: string) => Promise<void>) | null } = { afterCommit: null };
