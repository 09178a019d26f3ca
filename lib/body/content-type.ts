import { parse as parseContentType } from 'content-type';
import { boundedMemo } from '../bounded-memo';
import { PostbackError } from '../errors';

export type BodyFormat = 'json' | 'xml' | 'form';

/** What the Content-Type header says to do with a body; 'sniff' looks at its first character. */
export type BodyPlan = BodyFormat | 'sniff';

export const ACCEPTED_CONTENT_TYPES = [
  'application/json',
  'application/xml',
  'text/xml',
  'application/x-www-form-urlencoded',
  'text/plain',
] as const;

const UTF8_CHARSETS = new Set(['utf-8', 'utf8', 'us-ascii']);

/**
 * Decides how a POST body will be read, before any of it is read. impact.com documents JSON
 * for POST and says nothing of the XML content type, so `application/xml`, `text/xml` and any
 * `+xml` type are taken; a body with no type or `text/plain` is sniffed, since a partner may
 * leave the type to whatever sent it.
 */
export function planBody(contentType: string | undefined): BodyPlan {
  return contentType === undefined ? 'sniff' : rememberedPlan(contentType);
}

// A sender uses one or two Content-Types: each is parsed once.
const rememberedPlan = boundedMemo(64, parsePlan);

/**
 * Read with the `content-type` package (Express's own), which knows quoted parameter values:
 * `application/json; foo="a;charset=latin1"` is JSON with no charset, where splitting on `;`
 * found a charset that was never sent.
 */
function parsePlan(contentType: string): BodyPlan {
  if (contentType.trim() === '') return 'sniff';
  const { type, parameters } = parseContentType(contentType);
  const media = type.trim().toLowerCase();
  const charset = parameters['charset']?.toLowerCase();
  if (charset !== undefined && !UTF8_CHARSETS.has(charset)) {
    throw new PostbackError('charset.unsupported', `charset "${charset}" is not supported; send UTF-8`);
  }
  if (media === 'application/json' || /^application\/[^/]+\+json$/.test(media)) return 'json';
  if (media === 'application/xml' || media === 'text/xml' || /^[a-z]+\/[^/]+\+xml$/.test(media)) return 'xml';
  if (media === 'application/x-www-form-urlencoded') return 'form';
  if (media === 'text/plain') return 'sniff';
  throw new PostbackError(
    'content_type.unsupported',
    `content type "${media}" is not supported; send one of ${ACCEPTED_CONTENT_TYPES.join(', ')}`,
  );
}

/**
 * True for a body that carries nothing: no characters but JSON's whitespace (space, tab, CR,
 * LF), after at most one byte order mark. JavaScript's trim() also strips form feeds, vertical
 * tabs, U+00A0 and U+2028, which are characters a body may not hide behind.
 */
export function isEmptyBody(text: string): boolean {
  return LEADING_SPACE.exec(text)?.[0].length === text.length;
}

/** At most one byte order mark, then JSON's whitespace. */
const LEADING_SPACE = /^\uFEFF?[ \t\r\n]*/;

/** The format of a sniffed body by its first character after JSON whitespace: `{` is JSON, `<` is XML, anything else a form. */
export function sniffFormat(text: string): BodyFormat {
  const first = text.charAt(LEADING_SPACE.exec(text)?.[0].length ?? 0);
  if (first === '{') return 'json';
  if (first === '<') return 'xml';
  return 'form';
}
