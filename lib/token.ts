import { createHash, timingSafeEqual } from 'node:crypto';

export const TOKEN_QUERY_PARAM = 'token';
export const TOKEN_HEADER = 'x-postback-token';

export type TokenCheck = (presented: readonly string[]) => 'ok' | 'missing' | 'invalid';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Compiles the shared-secret check. Tokens are compared as SHA-256 digests with
 * timingSafeEqual, so neither the content nor the length of a configured token leaks through
 * response timing, and every configured token is compared (no early exit) during rotation.
 */
export function compileTokenCheck(tokens: readonly string[]): TokenCheck {
  const expected = tokens.map(digest);
  return function checkToken(presented) {
    if (presented.length === 0) return 'missing';
    for (const candidate of presented) {
      const actual = digest(candidate);
      let matched = false;
      for (const token of expected) matched = timingSafeEqual(actual, token) || matched;
      if (!matched) return 'invalid';
    }
    return 'ok';
  };
}
