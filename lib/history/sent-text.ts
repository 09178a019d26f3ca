import { addField, type FieldRecord, type FieldValue } from '../body/field-record';
import { parseBodyAs } from '../body/read-body';
import { parseUrlEncoded } from '../body/parse-urlencoded';
import type { PostbackFormat } from '../events';
import type { NewHistoryEntry } from './history-entry';

/**
 * A postback's fields as it sent them: its query string (the token taken out) and its body's
 * text. History keeps this instead of the parsed fields, which are made again when an entry is
 * read: a string costs nothing to keep, where a record of 30 fields is some 35 objects that the
 * garbage collector copies and marks for as long as the entry lives.
 */
export interface SentText {
  readonly query: string;
  readonly body: string | null;
}

/**
 * The fields a SentText holds, as the receiver read them: the query's, then the body's in the
 * `format` it was read as. They were read once already, so no limit applies.
 */
export function fieldsOfSent(format: PostbackFormat | null, sent: SentText): FieldRecord {
  const query = parseUrlEncoded(sent.query, Number.POSITIVE_INFINITY);
  if (sent.body === null || (format !== 'json' && format !== 'xml' && format !== 'form')) return query;
  const body = parseBodyAs(format, sent.body, Number.POSITIVE_INFINITY);
  // As the receiver joins a POST URL's fixed query fields to its body's.
  if (Object.keys(query).length === 0) return body;
  for (const key in body) addField(query, key, body[key] as FieldValue);
  return query;
}

/**
 * Marks the logs of this package, which keep `sent` in place of the fields and never read
 * `fields` as they write: an entry's `fields` is then parsed only when someone reads it.
 */
export const KEEPS_SENT_TEXT = Symbol('keeps sent text');

/**
 * The entry as a log gets it: a log of one's own, which may spread or serialise it, gets its
 * fields as a plain property.
 */
export function entryForLog(log: object, entry: NewHistoryEntry): NewHistoryEntry {
  return KEEPS_SENT_TEXT in log ? entry : { ...entry, fields: entry.fields };
}
