import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Every page and asset: no script at all, styles and images from the console only, forms posted
 * back to it, never framed. Sender values are escaped as well; this is the second wall.
 */
export function setSecurityHeaders(res: ServerResponse): void {
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Cache-Control', 'no-store');
}

const COOKIE = 'impact_console_csrf';

function cookieOf(req: IncomingMessage): string | null {
  const header = req.headers.cookie ?? '';
  for (const pair of header.split(';')) {
    const [name, ...rest] = pair.trim().split('=');
    if (name === COOKIE) return rest.join('=');
  }
  return null;
}

/**
 * CSRF tokens bound to a cookie: the cookie holds a random value, and every form a token made
 * from it with the console's secret (HMAC). A page on another site can neither read the cookie
 * nor make the token, and SameSite=Strict keeps the cookie off its requests to begin with.
 */
export class CsrfTokens {
  readonly #secret: Buffer;

  constructor(secret: Buffer = randomBytes(32)) {
    this.#secret = secret;
  }

  #tokenOf(value: string): string {
    return createHmac('sha256', this.#secret).update(value).digest('base64url');
  }

  /** The form token for this browser, setting its cookie first if it has none. */
  formToken(req: IncomingMessage, res: ServerResponse, cookiePath: string, secure: boolean): string {
    let value = cookieOf(req);
    if (value === null || !/^[\w-]{43}$/.test(value)) {
      value = randomBytes(32).toString('base64url');
      res.appendHeader(
        'Set-Cookie',
        `${COOKIE}=${value}; Path=${cookiePath}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`,
      );
    }
    return this.#tokenOf(value);
  }

  /** Whether a posted form carries the token of the cookie the browser sent with it. */
  verify(req: IncomingMessage, posted: string | undefined): boolean {
    const value = cookieOf(req);
    if (value === null || posted === undefined) return false;
    const expected = Buffer.from(this.#tokenOf(value));
    const given = Buffer.from(posted);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }
}
