import { addField, assertFieldCount, createRecord, type FieldRecord } from './field-record';

/**
 * Parses a query string or form body with URLSearchParams into a null-prototype record, for
 * GET and form alike so both decode the same bytes the same way (qs, which body-parser and
 * Express's extended parser use, keeps invalid percent sequences raw where URLSearchParams
 * turns them into U+FFFD, and turns repeated keys into arrays). Repeated keys are a 400, and
 * the field cap is enforced instead of Node's silent cut at 1,000 keys.
 */
export function parseUrlEncoded(text: string, maxFields: number): FieldRecord {
  const record = createRecord();
  let count = 0;
  for (const [key, value] of new URLSearchParams(text)) {
    count += 1;
    assertFieldCount(count, maxFields);
    addField(record, key, value);
  }
  return record;
}

/** The query string of a request URL, without the leading "?". */
export function queryStringOf(url: string): string {
  const start = url.indexOf('?');
  return start === -1 ? '' : url.slice(start + 1);
}
