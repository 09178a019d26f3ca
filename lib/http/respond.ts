import type { Request, Response } from 'express';
import type { PostbackError } from '../errors';
import type { NormalizedOptions } from '../options';

type Flavour = 'text' | 'json' | 'xml';

const ALLOWED_METHODS = 'GET, POST';
// impact.com retries a non-2xx; a hint for anything else that reads the header.
const RETRY_AFTER_SECONDS = '10';

/** Picks the answer format from Accept: JSON, XML, or plain text (the default). */
function flavourOf(req: Request): Flavour {
  if (req.headers.accept === undefined) return 'text';
  const chosen = req.accepts(['text/plain', 'application/json', 'application/xml', 'text/xml']);
  if (chosen === 'application/json') return 'json';
  if (chosen === 'application/xml' || chosen === 'text/xml') return 'xml';
  return 'text';
}

const CONTENT_TYPES: Readonly<Record<Flavour, string>> = {
  text: 'text/plain; charset=utf-8',
  json: 'application/json; charset=utf-8',
  xml: 'application/xml; charset=utf-8',
};

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function write(res: Response, status: number, contentType: string, body: string): void {
  if (res.headersSent || res.writableEnded) return;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // The status through writeHead rather than `res.statusCode = status`, which writeHead then
  // stores again: a store to Express's response object was a measurable cost per request.
  res.writeHead(status);
  res.end(body);
}

/**
 * Answers a postback handled: a success in the form the Accept header asks for (or the fixed
 * one), with `X-Postback-Outcome` saying how it was handled (delivered, duplicate, stale, or
 * stored by the inbox), for
 * tools and logs; impact.com reads only the status.
 */
export function sendSuccess(
  req: Request,
  res: Response,
  fixed: NormalizedOptions['successResponse'],
  outcome: 'delivered' | 'duplicate' | 'stale' | 'stored',
): void {
  if (!res.headersSent) res.setHeader('X-Postback-Outcome', outcome);
  if (fixed?.body !== undefined) {
    write(res, fixed.status, fixed.contentType ?? CONTENT_TYPES.text, fixed.body);
    return;
  }
  const status = fixed?.status ?? 200;
  const flavour = flavourOf(req);
  const body =
    flavour === 'json'
      ? '{"ok":true}'
      : flavour === 'xml'
        ? '<?xml version="1.0" encoding="UTF-8"?>\n<response><ok>true</ok></response>'
        : 'OK';
  write(res, status, CONTENT_TYPES[flavour], status === 204 ? '' : body);
}

/**
 * Answers an error with its code and message, never a stack trace or the allow-list. When the
 * body was never read (refused before reading), the connection is closed rather than left to
 * drain an upload nobody wants.
 */
export function sendError(req: Request, res: Response, error: PostbackError, bodyUnread: boolean): void {
  if (res.headersSent || res.writableEnded) return;
  if (error.code === 'method.not_allowed') res.setHeader('Allow', ALLOWED_METHODS);
  if (error.status === 503) res.setHeader('Retry-After', RETRY_AFTER_SECONDS);
  // A receiver shutting down lets the client's connection go, so it reconnects to another.
  if ((bodyUnread && hasBody(req)) || error.code === 'router.closed') res.setHeader('Connection', 'close');
  const flavour = flavourOf(req);
  const { code, message } = error;
  const body =
    flavour === 'json'
      ? JSON.stringify({ error: { code, message } })
      : flavour === 'xml'
        ? `<?xml version="1.0" encoding="UTF-8"?>\n<error><code>${escapeXml(code)}</code><message>${escapeXml(message)}</message></error>`
        : `${code}: ${message}`;
  write(res, error.status, CONTENT_TYPES[flavour], body);
}

function hasBody(req: Request): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
}
