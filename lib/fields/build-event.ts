import type { FieldRecord } from '../body/field-record';
import { PostbackError } from '../errors';
import type { PostbackEvent, PostbackMeta, PostbackRoute } from '../events';
import type { NormalizedFields } from './normalize-fields';

// An inquiry is open until impact.com resolves it; an empty status means it was just created.
const OPEN_RESOLUTION_STATUSES = new Set(['', 'UNRESOLVED']);

/**
 * Builds the event a route emits from its normalised fields, refusing one without its
 * required id. The event is frozen, so one listener cannot change what the next one sees.
 */
export function buildEvent(
  route: PostbackRoute,
  normalized: NormalizedFields,
  raw: FieldRecord,
  meta: PostbackMeta,
): PostbackEvent {
  const { known, fields, warnings } = normalized;
  const base = { fields, raw, warnings, meta };
  switch (route) {
    case 'actions':
    case 'clearing': {
      const actionId = requireId(known, 'actionId', normalized);
      const trigger = route === 'actions' ? 'lifecycle' : 'clearing';
      return deepFreeze({ kind: 'action', trigger, ...known, actionId, ...base });
    }
    case 'inquiries': {
      const inquiryId = requireId(known, 'inquiryId', normalized);
      const resolution = known['resolutionStatus'];
      const state = typeof resolution !== 'string' || OPEN_RESOLUTION_STATUSES.has(resolution) ? 'created' : 'resolved';
      return deepFreeze({ kind: 'inquiry', ...known, inquiryId, state, ...base });
    }
    case 'catalog':
      if (Object.keys(fields).length === 0) {
        throw new PostbackError('field.missing', 'the postback holds no fields');
      }
      return deepFreeze({ kind: 'catalog', ...known, ...base });
  }
}

function requireId(known: NormalizedFields['known'], name: string, normalized: NormalizedFields): string {
  const value = known[name];
  if (typeof value === 'string') return value;
  const placeholder = normalized.warnings.find((warning) => warning.field === name);
  const why =
    placeholder === undefined ? 'is missing or empty' : `holds the unexpanded placeholder ${placeholder.value}`;
  throw new PostbackError('field.missing', `field "${name}" ${why}`, { field: name });
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || value instanceof Date || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return value;
}
