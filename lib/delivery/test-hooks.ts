/**
 * A seam for the crash tests, which must kill the process at an exact moment rather than
 * guess it with timers. Not exported from the package entry; null in normal use.
 * - afterClaim: the store has claimed the postback, before any listener runs;
 * - afterCommit: the store has committed, before the answer is written.
 */
export const testHooks: {
  afterClaim: ((key: string) => Promise<void>) | null;
  afterCommit: ((key: string) => Promise<void>) | null;
} = { afterClaim: null, afterCommit: null };
