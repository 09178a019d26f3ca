/**
 * What a store's commit or renew throws when the claim no longer holds its subject (or key):
 * its lease lapsed and another claim took it over, so this one must write nothing. The router
 * then stops: it neither commits again nor renews.
 */
export class ClaimLostError extends Error {
  readonly code = 'claim.lost';

  constructor(what: string) {
    super(`${what}: another claim took it over after this claim's lease lapsed`);
    this.name = 'ClaimLostError';
  }
}

export function isClaimLost(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'claim.lost';
}
