import type { FieldRecord } from '../body/field-record';
import { PostbackError } from '../errors';
import type { PostbackEvent, PostbackMeta, PostbackRoute } from '../events';
import type { NormalizedFields } from './normalize-fields';

// An inquiry is open until impact.com resolves it; an empty status means it was just created.
const OPEN_RESOLUTION_STATUSES = new Set(['', 'UNRESOLVED']);

type EventDraft = Record<string, unknown>;

/**
 * Builds the event a route emits from its normalised fields, refusing one without its
 * required id. The event is frozen, so one listener cannot change what the next one sees.
 * `reconciled`: an action read from impact.com's API, whose trigger says so.
 */
export function buildEvent(
  route: PostbackRoute,
  normalized: NormalizedFields,
  raw: FieldRecord,
  meta: PostbackMeta,
  reconciled = false,
): PostbackEvent {
  const { fields, warnings } = normalized;
  let event: EventDraft;
  switch (route) {
    case 'actions':
    case 'clearing':
      event = withKnownFields(
        { kind: 'action', trigger: reconciled ? 'reconciliation' : route === 'actions' ? 'lifecycle' : 'clearing' },
        normalized,
      );
      requireId(event, 'actionId', normalized);
      break;
    case 'inquiries': {
      event = withKnownFields({ kind: 'inquiry' }, normalized);
      requireId(event, 'inquiryId', normalized);
      const resolution = event['resolutionStatus'];
      event['state'] =
        typeof resolution !== 'string' || OPEN_RESOLUTION_STATUSES.has(resolution) ? 'created' : 'resolved';
      break;
    }
    case 'catalog':
      if (Object.keys(fields).length === 0) {
        throw new PostbackError('field.missing', 'the postback holds no fields');
      }
      event = withKnownFields({ kind: 'catalog' }, normalized);
      break;
  }
  // Shallow freezes are enough: nested values come frozen from the parsers (see FieldValue).
  event['fields'] = Object.freeze(fields);
  event['raw'] = Object.freeze(raw);
  for (const warning of warnings) Object.freeze(warning);
  event['warnings'] = Object.freeze(warnings);
  event['meta'] = Object.freeze(meta);
  return Object.freeze(event) as unknown as PostbackEvent;
}

/**
 * Adds the known fields one by one. A plain object is safe here, as the names come from the
 * field specs, never from the sender; spreading a record into an object literal instead cost
 * several microseconds per postback.
 */
function withKnownFields(event: EventDraft, normalized: NormalizedFields): EventDraft {
  const { knownNames, knownValues } = normalized;
  for (let i = 0; i < knownNames.length; i += 1) event[knownNames[i] as string] = knownValues[i];
  return event;
}

function requireId(event: EventDraft, name: string, normalized: NormalizedFields): void {
  if (typeof event[name] === 'string') return;
  const placeholder = normalized.warnings.find((warning) => warning.field === name);
  const why =
    placeholder === undefined ? 'is missing or empty' : `holds the unexpanded placeholder ${placeholder.value}`;
  throw new PostbackError('field.missing', `field "${name}" ${why}`, { field: name });
}
