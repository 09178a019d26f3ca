import { parseJsonBody } from '../body/parse-json';
import { PostbackError } from '../errors';
import type { PostbackEvent, PostbackFormat, PostbackRoute } from '../events';
import { subjectOf } from '../journal/journal';
import type { InboxEntry, InboxRow } from '../stores/store';
import { buildEvent } from './build-event';
import type { FieldIndex } from './field-names';
import { normalizeFields } from './normalize-fields';

const ROUTES: ReadonlySet<string> = new Set(['actions', 'clearing', 'inquiries', 'catalog']);
const FORMATS: ReadonlySet<string> = new Set(['query', 'json', 'xml', 'form']);
/** A stored postback was checked against maxFields on arrival; a later, lower setting must not refuse it. */
const ANY_FIELD_COUNT = Number.MAX_SAFE_INTEGER;

/** What the inbox keeps of an event: its fields as received and its meta, from which it is rebuilt. */
export function inboxEntryOf(event: PostbackEvent): InboxEntry {
  const { meta } = event;
  return {
    key: meta.key,
    subject: subjectOf(event),
    route: meta.route,
    format: meta.format,
    ip: meta.ip,
    path: meta.path,
    receivedAt: meta.receivedAt,
    fields: JSON.stringify(event.raw),
  };
}

/**
 * Builds a stored postback's event again, as it was built on arrival: its fields read back by
 * the router's own JSON reader (null-prototype records, nested values frozen), named and
 * converted by the route's field index, with the meta it arrived with.
 */
export function rebuildEvent(row: InboxRow, indexes: Readonly<Record<PostbackRoute, FieldIndex>>): PostbackEvent {
  if (!ROUTES.has(row.route) || !FORMATS.has(row.format)) {
    throw new PostbackError('internal', `inbox row ${row.id} names no route or format this router knows`);
  }
  const route = row.route as PostbackRoute;
  const received = parseJsonBody(row.fields, ANY_FIELD_COUNT);
  return buildEvent(route, normalizeFields(received, indexes[route]), received, {
    receivedAt: row.receivedAt,
    ip: row.ip,
    format: row.format as PostbackFormat,
    route,
    path: row.path,
    key: row.key,
  });
}
