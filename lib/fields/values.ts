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

export type Converted =
  | { readonly ok: true; readonly value: string | Date }
  | { readonly ok: false; readonly reason: string; readonly warnOnly: boolean };

function refuse(reason: string): Converted {
  return { ok: false, reason, warnOnly: false };
}

function isCleanText(value: string, forbidden: RegExp, maxLength: number): boolean {
  return value.length <= maxLength && !forbidden.test(value) && value.isWellFormed();
}

/** Checks and converts one known field's text; a date that does not parse is only a warning. */
export function convertValue(type: FieldType, value: string): Converted {
  switch (type) {
    case 'id':
      return ID.test(value) ? { ok: true, value } : refuse('is not an impact.com identifier');
    case 'text':
      return isCleanText(value, SINGLE_LINE_FORBIDDEN, MAX_TEXT_LENGTH)
        ? { ok: true, value }
        : refuse(`holds control or replacement characters, or is longer than ${MAX_TEXT_LENGTH}`);
    case 'note':
      return isCleanText(value, MULTI_LINE_FORBIDDEN, MAX_NOTE_LENGTH)
        ? { ok: true, value }
        : refuse(`holds control or replacement characters, or is longer than ${MAX_NOTE_LENGTH}`);
    case 'enum':
      return isCleanText(value, SINGLE_LINE_FORBIDDEN, MAX_ENUM_LENGTH)
        ? { ok: true, value: value.toUpperCase() }
        : refuse(`is not a status code of at most ${MAX_ENUM_LENGTH} characters`);
    case 'money':
      return MONEY.test(value) ? { ok: true, value } : refuse('is not a plain decimal number such as 12.50');
    case 'currency':
      return CURRENCY.test(value)
        ? { ok: true, value: value.toUpperCase() }
        : refuse('is not a three-letter ISO 4217 currency code');
    case 'date': {
      const date = parseIsoDate(value);
      return date === null
        ? { ok: false, reason: 'is not an ISO 8601 date and time with an offset', warnOnly: true }
        : { ok: true, value: date };
    }
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
  const [, year, month, day, hour, minute, second = '0', fraction = '0', zulu, sign, offsetHours, offsetMinutes] =
    match;
  const numbers = [year, month, day, hour, minute, second].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const [y, mo, d, h, mi, s] = numbers;
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const millis = Number(fraction.padEnd(3, '0').slice(0, 3));
  const local = Date.UTC(y, mo - 1, d, h, mi, s, millis);
  if (new Date(local).getUTCDate() !== d) return null; // 2024-02-30 rolls over
  let offset = 0;
  if (zulu === undefined) {
    const oh = Number(offsetHours);
    const om = Number(offsetMinutes);
    if (oh > 23 || om > 59) return null;
    offset = (sign === '-' ? -1 : 1) * (oh * 60 + om);
  }
  return new Date(local - offset * 60_000);
}
