/**
 * What a dedupe store answers to a claim:
 * - `claimed`: nobody has handled this key or is handling it; the caller now holds it and must
 *   `commit` it once handled or `release` it if handling failed;
 * - `in-flight`: someone holds it right now;
 * - `handled`: it was committed before (a duplicate).
 */
export type ClaimResult = 'claimed' | 'in-flight' | 'handled';

/**
 * The memory of which postbacks were handled. `claim` must be atomic: of any number of
 * concurrent claims of one key, at most one is answered `claimed`. Any method may return a
 * promise; a method that throws or rejects makes the router answer 503 (impact.com retries).
 */
export interface DedupeStore {
  claim(key: string): ClaimResult | Promise<ClaimResult>;
  commit(key: string): void | Promise<void>;
  release(key: string): void | Promise<void>;
}
