import type { IncomingMessage } from 'node:http';
import accepts from 'accepts';
import { boundedMemo } from '../bounded-memo';
import type { PostbackError } from '../errors';
import type { NormalizedOptions } from '../options';
import { declaresBody, type RequestHeaders } from './incoming';

/**
 * What the receiver answers, for an adapter to write as its host writes answers. Answers of
 * the same kind are one shared object: `headers` and the whole answer are frozen.
 */
export interface Answer {
  readonly status: number;
  /** Header names in lower case; Content-Length is among them. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** How a postback was handled, in the `X-Postback-Outcome` header of a 2xx. */
export type AnsweredOutcome = 'delivered' | 'duplicate' | 'stale' | 'stored';

type Flavour = 'text' | 'json' | 'xml';

const ALLOWED_METHODS = 'GET, POST';
// impact.com retries a non-2xx; a hint for anything else that reads the header.
const RETRY_AFTER_SECONDS = '10';

const CONTENT_TYPES: Readonly<Record<Flavour, string>> = {
  text: 'text/plain; charset=utf-8',
  json: 'application/json; charset=utf-8',
  xml: 'application/xml; charset=utf-8',
};

const OFFERED = ['text/plain', 'application/json', 'application/xml', 'text/xml'];

/**
 * The answer format for an Accept header: JSON, XML, or plain text (the default). Negotiated
 * by `accepts`, as Express's req.accepts() does; a sender sends one or two Accept headers, so
 * each is negotiated once.
 */
const flavourOfAccept = boundedMemo(64, (accept: string): Flavour => {
  // accepts reads nothing of a request but its headers.
  const headersOnly: Pick<IncomingMessage, 'headers'> = { headers: { accept } };
  const chosen = accepts(headersOnly as IncomingMessage).type(OFFERED);
  if (chosen === 'application/json') return 'json';
  if (chosen === 'application/xml' || chosen === 'text/xml') return 'xml';
  return 'text';
});

function flavourOf(headers: RequestHeaders): Flavour {
  const accept = headers['accept'];
  return typeof accept === 'string' ? flavourOfAccept(accept) : 'text';
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function build(status: number, contentType: string, body: string, extra: Record<string, string> = {}): Answer {
  return Object.freeze({
    status,
    headers: Object.freeze({
      ...extra,
      'content-type': contentType,
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    }),
    body,
  });
}

const SUCCESS_BODIES: Readonly<Record<Flavour, string>> = {
  json: '{"ok":true}',
  xml: '<?xml version="1.0" encoding="UTF-8"?>\n<response><ok>true</ok></response>',
  text: 'OK',
};

/**
 * The success answers of a receiver, built once: one per outcome and format. A success comes
 * in the form the Accept header asks for (or the fixed one), with `X-Postback-Outcome` saying
 * how it was handled (delivered, duplicate, stale, or stored by the inbox), for tools and logs;
 * impact.com reads only the status.
 */
export function createSuccessAnswers(
  fixed: NormalizedOptions['successResponse'],
): (headers: RequestHeaders, outcome: AnsweredOutcome) => Answer {
  const status = fixed?.status ?? 200;
  const answerFor = (outcome: AnsweredOutcome, flavour: Flavour): Answer => {
    const extra = { 'x-postback-outcome': outcome };
    return fixed?.body !== undefined
      ? build(fixed.status, fixed.contentType ?? CONTENT_TYPES.text, fixed.body, extra)
      : build(status, CONTENT_TYPES[flavour], isBodiless(status) ? '' : SUCCESS_BODIES[flavour], extra);
  };
  const byFlavour = (outcome: AnsweredOutcome): Readonly<Record<Flavour, Answer>> => ({
    text: answerFor(outcome, 'text'),
    json: answerFor(outcome, 'json'),
    xml: answerFor(outcome, 'xml'),
  });
  const answers: Readonly<Record<AnsweredOutcome, Readonly<Record<Flavour, Answer>>>> = {
    delivered: byFlavour('delivered'),
    duplicate: byFlavour('duplicate'),
    stale: byFlavour('stale'),
    stored: byFlavour('stored'),
  };
  return (headers, outcome) => answers[outcome][flavourOf(headers)];
}

/**
 * Answers an error with its code and message, never a stack trace or the allow-list. When the
 * body was never read (refused before reading), the connection is closed rather than left to
 * drain an upload nobody wants.
 */
export function errorAnswer(headers: RequestHeaders, error: PostbackError, bodyUnread: boolean): Answer {
  const extra: Record<string, string> = {};
  if (error.code === 'method.not_allowed') extra['allow'] = ALLOWED_METHODS;
  if (error.status === 503) extra['retry-after'] = RETRY_AFTER_SECONDS;
  // A receiver shutting down lets the client's connection go, so it reconnects to another.
  if ((bodyUnread && declaresBody(headers)) || error.code === 'router.closed') extra['connection'] = 'close';
  const flavour = flavourOf(headers);
  const { code, message } = error;
  const body =
    flavour === 'json'
      ? JSON.stringify({ error: { code, message } })
      : flavour === 'xml'
        ? `<?xml version="1.0" encoding="UTF-8"?>\n<error><code>${escapeXml(code)}</code><message>${escapeXml(message)}</message></error>`
        : `${code}: ${message}`;
  return build(error.status, CONTENT_TYPES[flavour], body, extra);
}

/** 204 No Content and 205 Reset Content carry no body (a standard Response refuses one). */
export function isBodiless(status: number): boolean {
  return status === 204 || status === 205;
}
