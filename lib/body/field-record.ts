import { PostbackError, quoteName } from '../errors';

/**
 * A received value: text, or for JSON and XML bodies, nested lists and records of text. Nested
 * lists and records are frozen by the parser that makes them, so an event is frozen through
 * and through by freezing its own records, without walking every value of every postback.
 */
export type FieldValue = string | readonly FieldValue[] | { readonly [key: string]: FieldValue };

/** Received fields by key, as a null-prototype object so no key can reach Object.prototype. */
export type FieldRecord = Record<string, FieldValue>;

/** Nesting deeper than this in a JSON or XML body is refused before anything recursive runs. */
export const MAX_NESTING_DEPTH = 16;

export function createRecord(): FieldRecord {
  return Object.create(null) as FieldRecord;
}

/**
 * Adds a field, refusing a key that is already there: every parser on its own would keep the
 * first or the last of two `Payout` keys, and not the same one, so two keys are a 400 instead.
 */
export function addField(record: FieldRecord, key: string, value: FieldValue): void {
  // Records have a null prototype and hold no undefined value, so a plain read tells whether
  // the key is there: Object.hasOwn cost about a fifth of parsing a 31-field query.
  if (record[key] !== undefined) throw duplicateField(key);
  record[key] = value;
}

export function duplicateField(key: string): PostbackError {
  return new PostbackError('field.duplicate', `field ${quoteName(key)} was sent more than once`, { field: key });
}

/** Counts top-level fields against the configured cap, as each parser adds them. */
export function assertFieldCount(count: number, maxFields: number): void {
  if (count > maxFields) {
    throw new PostbackError('fields.too_many', `more than ${maxFields} fields were sent`);
  }
}
