import type { FieldType } from './field-specs';

/** A value impact.com left unexpanded, such as `{SubId1}` (or its `{DeltaAmo unt}` typo). */
const PLACEHOLDER = /^\{[A-Za-z][A-Za-z0-9_ ]*\}$/;
const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$/;
// Exact decimal text: no exponent, no thousands separator, no hex, no NaN, no spaces.
const MONEY = /^-?(?:0|[1-9]\d{0,14})(?:\.\d{1,8})?$/;
const CURRENCY = /^[A-Za-z]{3}$/;
// C0 controls, DEL, and U+FFFD (what a broken percent or byte sequence decodes to).
const SINGLE_LINE_FORBIDDEN = /[\u0000-\u001f\u007f\ufffd]/;
const MULTI_LINE_FORBIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufffd]/;
const MAX_TEXT_LENGTH = 2048;
const MAX_NOTE_LENGTH = 20_000;
const MAX_ENUM_LENGTH = 64;

export function isPlaceholder(value: string): boolean {
  // The brace test first: this runs on every value of every postback.
  return value.charCodeAt(0) === 0x7b && PLACEHOLDER.test(value);
}

/** Why a value was refused. One instance per reason, so converting a value allocates nothing. */
export class Refusal {
  constructor(
    readonly reason: string,
    /** A date that does not parse is only a warning; every other refusal is a 400. */
    readonly warnOnly = false,
  ) {}
}

const NOT_AN_ID = new Refusal('is not an impact.com identifier');
const NOT_CLEAN_TEXT = new Refusal(`holds control or replacement characters, or is longer than ${MAX_TEXT_LENGTH}`);
const NOT_CLEAN_NOTE = new Refusal(`holds control or replacement characters, or is longer than ${MAX_NOTE_LENGTH}`);
const NOT_AN_ENUM = new Refusal(`is not a status code of at most ${MAX_ENUM_LENGTH} characters`);
const NOT_MONEY = new Refusal('is not a plain decimal number such as 12.50');
const NOT_A_CURRENCY = new Refusal('is not a three-letter ISO 4217 currency code');
const NOT_A_DATE = new Refusal('is not an ISO 8601 date and time with an offset', true);

function isCleanText(value: string, forbidden: RegExp, maxLength: number): boolean {
  return value.length <= maxLength && !forbidden.test(value) && value.isWellFormed();
}

/** Checks and converts one known field's text: the converted value, or why it was refused. */
export function convertValue(type: FieldType, value: string): string | Date | Refusal {
  switch (type) {
    case 'id':
      return ID.test(value) ? value : NOT_AN_ID;
    case 'text':
      return isCleanText(value, SINGLE_LINE_FORBIDDEN, MAX_TEXT_LENGTH) ? value : NOT_CLEAN_TEXT;
    case 'note':
      return isCleanText(value, MULTI_LINE_FORBIDDEN, MAX_NOTE_LENGTH) ? value : NOT_CLEAN_NOTE;
    case 'enum':
      return isCleanText(value, SINGLE_LINE_FORBIDDEN, MAX_ENUM_LENGTH) ? value.toUpperCase() : NOT_AN_ENUM;
    case 'money':
      return MONEY.test(value) ? value : NOT_MONEY;
    case 'currency':
      return CURRENCY.test(value) ? value.toUpperCase() : NOT_A_CURRENCY;
    case 'date':
      return parseIsoDate(value) ?? NOT_A_DATE;
  }
}

// The offset may arrive as a space: impact.com is reported not to URL-encode substituted
// values, and an unencoded `+` in a query string or form decodes to a space.
//   YYYY-MM-DDTHH:MM[:SS[.fraction of 1-9 digits]](Z | sign HH[:]MM), sign one of + - space
// Read character by character rather than with a regular expression: every action carries
// three or four dates, and the match array and its substrings were most of the cost.

/** ISO 8601 date and time with an offset (`2024-09-10T10:42:38-07:00`), or null. */
export function parseIsoDate(text: string): Date | null {
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 2);
  const day = digitsAt(text, 8, 2);
  const hour = digitsAt(text, 11, 2);
  const minute = digitsAt(text, 14, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0) return null;
  if (text[4] !== '-' || text[7] !== '-' || text[10] !== 'T' || text[13] !== ':') return null;
  let at = 16;
  let second = 0;
  let millis = 0;
  if (text[at] === ':') {
    second = digitsAt(text, at + 1, 2);
    if (second < 0) return null;
    at += 3;
    if (text[at] === '.') {
      const start = at + 1;
      at = start;
      while (at < text.length && isDigit(text.charCodeAt(at))) at += 1;
      if (at === start || at - start > 9) return null;
      // Milliseconds: the first three digits, padded (".5" is 500 ms).
      millis = Number(text.slice(start, Math.min(at, start + 3)).padEnd(3, '0'));
    }
  }
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  let offsetMinutes = 0;
  const sign = text[at];
  if (sign === 'Z') {
    if (at + 1 !== text.length) return null;
  } else if (sign === '+' || sign === '-' || sign === ' ') {
    const hours = digitsAt(text, at + 1, 2);
    const minutesAt = text[at + 3] === ':' ? at + 4 : at + 3;
    const minutes = digitsAt(text, minutesAt, 2);
    if (hours < 0 || minutes < 0 || minutesAt + 2 !== text.length) return null;
    if (hours > 23 || minutes > 59) return null;
    offsetMinutes = (sign === '-' ? -1 : 1) * (hours * 60 + minutes);
  } else {
    return null;
  }
  const local = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const date = new Date(local);
  if (date.getUTCDate() !== day) return null; // 2024-02-30 rolls over
  date.setTime(local - offsetMinutes * 60_000);
  return date;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** The number written by `count` ASCII digits at `start`, or -1. */
function digitsAt(text: string, start: number, count: number): number {
  if (start + count > text.length) return -1;
  let value = 0;
  for (let i = start; i < start + count; i += 1) {
    const code = text.charCodeAt(i);
    if (!isDigit(code)) return -1;
    value = value * 10 + (code - 0x30);
  }
  return value;
}

const twoDigits = (value: number): string => (value < 10 ? `0${value}` : String(value));

/**
 * Date#toISOString, written out: the built-in cost three times as much, and every action holds
 * three or four dates. Years outside 0-9999 (which toISOString writes with a sign) use it.
 */
export function isoText(date: Date): string {
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) return date.toISOString();
  const millis = date.getUTCMilliseconds();
  return (
    `${String(year).padStart(4, '0')}-${twoDigits(date.getUTCMonth() + 1)}-${twoDigits(date.getUTCDate())}` +
    `T${twoDigits(date.getUTCHours())}:${twoDigits(date.getUTCMinutes())}:${twoDigits(date.getUTCSeconds())}` +
    `.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`
  );
}
