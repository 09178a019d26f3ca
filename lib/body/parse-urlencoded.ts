import { addField, assertFieldCount, createRecord, type FieldRecord } from './field-record';

/**
 * Parses a query string or form body into a null-prototype record, exactly as URLSearchParams
 * would, for GET and form alike so both decode the same bytes the same way (qs, which
 * body-parser and Express's extended parser use, keeps invalid percent sequences raw where
 * URLSearchParams turns them into U+FFFD, and turns repeated keys into arrays). Repeated keys
 * are a 400, and the field cap is enforced instead of Node's silent cut at 1,000 keys.
 */
export function parseUrlEncoded(text: string, maxFields: number): FieldRecord {
  return parseCommonCase(text, maxFields) ?? parseWithUrlSearchParams(text, maxFields);
}

/** The query string of a request URL, without the leading "?". */
export function queryStringOf(url: string): string {
  const start = url.indexOf('?');
  return start === -1 ? '' : url.slice(start + 1);
}

function parseWithUrlSearchParams(text: string, maxFields: number): FieldRecord {
  const record = createRecord();
  let count = 0;
  for (const [key, value] of new URLSearchParams(text)) {
    count += 1;
    assertFieldCount(count, maxFields);
    addField(record, key, value);
  }
  return record;
}

/**
 * The same parse without URLSearchParams's object, arrays and iterator, which cost more than
 * the rest of the router's work on a query string. It gives up (null) on anything where
 * decodeURIComponent and the WHATWG decoder could differ: a lone surrogate (which the WHATWG
 * parser turns into U+FFFD) or a percent sequence that is not valid UTF-8 (which
 * decodeURIComponent refuses); URLSearchParams then parses the whole text.
 */
function parseCommonCase(text: string, maxFields: number): FieldRecord | null {
  if (!text.isWellFormed()) return null;
  const record = createRecord();
  let count = 0;
  // The URLSearchParams constructor drops one leading "?".
  let start = text.startsWith('?') ? 1 : 0;
  while (start <= text.length) {
    let end = text.indexOf('&', start);
    if (end === -1) end = text.length;
    if (end > start) {
      const equals = text.indexOf('=', start);
      const hasValue = equals !== -1 && equals < end;
      const key = decodeComponent(text.slice(start, hasValue ? equals : end));
      const value = hasValue ? decodeComponent(text.slice(equals + 1, end)) : '';
      if (key === null || value === null) return null;
      count += 1;
      assertFieldCount(count, maxFields);
      addField(record, key, value);
    }
    start = end + 1;
  }
  return record;
}

function decodeComponent(raw: string): string | null {
  const spaced = raw.includes('+') ? raw.replaceAll('+', ' ') : raw;
  if (!spaced.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch {
    return null;
  }
}

/**
 * The query string without the fields named `name` (as parseUrlEncoded decodes names), every
 * other field's text kept byte for byte, so that parsing the result gives the same record less
 * those fields.
 */
export function withoutQueryField(text: string, name: string): string {
  // The parsers drop one leading "?": kept, so that what follows it parses as before.
  const mark = text.startsWith('?') ? '?' : '';
  const fields = text.slice(mark.length).split('&');
  const kept = fields.filter((field) => field === '' || fieldName(field) !== name).join('&');
  // A field that now comes first and begins with "?" would lose it: an empty field first keeps it.
  return mark === '' && kept.startsWith('?') ? `&${kept}` : mark + kept;
}

function fieldName(field: string): string {
  const equals = field.indexOf('=');
  const raw = equals === -1 ? field : field.slice(0, equals);
  const decoded = raw.isWellFormed() ? decodeComponent(raw) : null;
  // What the WHATWG decoder makes of a name decodeURIComponent refuses.
  return decoded ?? new URLSearchParams(`${raw}=`).keys().next().value ?? '';
}
