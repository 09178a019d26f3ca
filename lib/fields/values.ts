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
  return PLACEHOLDER.test(value);
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
const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+\- ])(\d{2}):?(\d{2}))$/;

/** ISO 8601 date and time with an offset (`2024-09-10T10:42:38-07:00`), or null. */
export function parseIsoDate(text: string): Date | null {
  const match = ISO_DATE.exec(text);
  if (match === null) return null;
  // Unary plus on the groups rather than destructuring and map(Number): this runs for every
  // date of every postback.
  const year = +(match[1] as string);
  const month = +(match[2] as string);
  const day = +(match[3] as string);
  const hour = +(match[4] as string);
  const minute = +(match[5] as string);
  const second = match[6] === undefined ? 0 : +match[6];
  const fraction = match[7];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const millis = fraction === undefined ? 0 : +fraction.padEnd(3, '0').slice(0, 3);
  const local = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const date = new Date(local);
  if (date.getUTCDate() !== day) return null; // 2024-02-30 rolls over
  if (match[8] !== undefined) return date; // Z
  const offsetHours = +(match[10] as string);
  const offsetMinutes = +(match[11] as string);
  if (offsetHours > 23 || offsetMinutes > 59) return null;
  const offset = (match[9] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
  date.setTime(local - offset * 60_000);
  return date;
}
