import { hash } from 'node:crypto';
import type { FieldValue } from '../body/field-record';
import type { PostbackRoute } from '../events';

/**
 * The dedupe key of a postback: its route plus a SHA-256 over its canonical fields (known
 * fields as converted, unknown ones as received, absent ones left out), keys sorted at every
 * level. impact.com sends no delivery id, so equal content is the only sign of a repeat; a
 * modification or reversal of an action changes its status or amounts and so its key.
 */
export function dedupeKey(route: PostbackRoute, canonical: ReadonlyMap<string, FieldValue>): string {
  const names = [...canonical.keys()].sort();
  let text = `o${names.length}:`;
  for (const name of names) text += `${name.length}:${name}${encode(canonical.get(name) as FieldValue)}`;
  // One-shot hash: no Hash object (and its native context) per request.
  return `${route}:${hash('sha256', text, 'base64url')}`;
}

/**
 * One string for the hash, with every string length-prefixed and every structure tagged, so no
 * two different values encode the same (there is no separator a value could imitate).
 */
function encode(value: FieldValue): string {
  if (typeof value === 'string') return `s${value.length}:${value}`;
  if (Array.isArray(value)) return `a${value.length}:${(value as readonly FieldValue[]).map(encode).join('')}`;
  const record = value as Readonly<Record<string, FieldValue>>;
  const keys = Object.keys(record).sort();
  let text = `o${keys.length}:`;
  for (const key of keys) text += `${key.length}:${key}${encode(record[key] as FieldValue)}`;
  return text;
}
