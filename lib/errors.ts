/**
 * One error family for everything the router refuses or fails at. Duck-type compatible with
 * `http-errors` (`status`, `statusCode`, `expose`) so host error handlers treat it like any
 * Express error; `code` is the stable, dotted identifier documented in the README.
 */

/** Every code the router answers with. The README's "Errors" table lists the same set. */
export const ERROR_STATUS = {
  'method.not_allowed': 405,
  // Only nodeHandler and fetchHandler answer it (without a `next`): Express and Fastify pass the path on.
  'route.not_found': 404,
  'ip.forbidden': 403,
  'token.missing': 403,
  'token.invalid': 403,
  'content_type.unsupported': 415,
  'charset.unsupported': 415,
  'content_encoding.unsupported': 415,
  'body.too_large': 413,
  'body.invalid': 400,
  'request.aborted': 400,
  'fields.too_many': 400,
  'field.duplicate': 400,
  'field.missing': 400,
  'field.invalid': 400,
  'listener.failed': 500,
  'listener.timeout': 503,
  'listener.missing': 503,
  'store.failed': 503,
  'postback.in_flight': 503,
  'router.closed': 503,
  // Reconciliation's own failures, never an HTTP answer: impact.com's API failed us (502-like).
  'reconcile.http': 502,
  'reconcile.invalid': 502,
  internal: 500,
} as const;

export type PostbackErrorCode = keyof typeof ERROR_STATUS;

export interface PostbackErrorDetails {
  /** The field a `field.*` error is about, in its camelCase name. */
  readonly field?: string;
  /** The underlying error (a listener's, a store's or a parser's). */
  readonly cause?: unknown;
}

export class PostbackError extends Error {
  override readonly name = 'PostbackError';
  readonly code: PostbackErrorCode;
  readonly status: number;
  readonly statusCode: number;
  /** True for 4xx: the message is safe to show to the sender. */
  readonly expose: boolean;
  readonly field?: string;

  constructor(code: PostbackErrorCode, message: string, details: PostbackErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.statusCode = this.status;
    this.expose = this.status < 500;
    if (details.field !== undefined) this.field = details.field;
  }
}

/** What a postback gets once close() has started: impact.com retries it, to this or another instance. */
export function routerClosed(): PostbackError {
  return new PostbackError('router.closed', 'this receiver is shutting down; retry later');
}

export function routeNotFound(): PostbackError {
  return new PostbackError(
    'route.not_found',
    'no postback route here: postbacks go to /actions, /clearing, /inquiries or /catalog below the base path',
  );
}

export function isPostbackError(value: unknown): value is PostbackError {
  return value instanceof PostbackError;
}

/**
 * A sender-chosen name as it may appear in a message: JSON-quoted, so a CR, LF or ANSI escape in
 * a key cannot split or colour the host's log line, and cut to 64 characters.
 */
export function quoteName(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}
