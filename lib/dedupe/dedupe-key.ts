import { createHash } from 'node:crypto';
import type { FieldRecord, FieldValue } from '../body/field-record';
import type { PostbackRoute } from '../events';

/**
 * The dedupe key of a postback: its route plus a SHA-256 over its canonical fields (known
 * fields as converted, unknown ones as received, absent ones left out), keys sorted at every
 * level. impact.com sends no delivery id, so equal content is the only sign of a repeat; a
 * modification or reversal of an action changes its status or amounts and so its key.
 */
export function dedupeKey(route: PostbackRoute, canonical: FieldRecord): string {
  const digest = createHash('sha256').update(stableStringify(canonical)).digest('base64url');
  return `${route}:${digest}`;
}

function stableStringify(value: FieldValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const record = value as Readonly<Record<string, FieldValue>>;
  const entries = Object.keys(record)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${stableStringify(record[key] as FieldValue)}`);
  return `{${entries.join(',')}}`;
}
