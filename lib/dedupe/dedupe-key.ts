import { hash } from 'node:crypto';
import type { FieldValue } from '../body/field-record';
import type { PostbackRoute } from '../events';
import type { CanonicalFields } from '../fields/normalize-fields';
import { CanonicalBytes } from './canonical-bytes';

/**
 * The dedupe key of a postback: its route plus a SHA-256 over its canonical fields (known
 * fields as converted, unknown ones as received, absent ones left out), keys sorted at every
 * level. impact.com sends no delivery id, so equal content is the only sign of a repeat; a
 * modification or reversal of an action changes its status or amounts and so its key.
 */
export function dedupeKey(route: PostbackRoute, canonical: CanonicalFields): string {
  const { names, values } = canonical;
  const order = sortedOrder(names);
  bytes.reset();
  bytes.tag('o', names.length);
  for (const index of order) {
    bytes.counted(names[index] as string);
    bytes.value(values[index] as FieldValue);
  }
  // One-shot hash: no Hash object (and its native context) per request.
  return `${route}:${hash('sha256', bytes.view(), 'base64url')}`;
}

const bytes = new CanonicalBytes();

// A template's fields arrive in the same order on every postback, so the last order worked out
// is kept and reused while the names match (mostly the very same strings, as field-names caches
// them, which compare at once).
let lastNames: readonly string[] = [];
let lastOrder: readonly number[] = [];

/** Indexes of `names` in sorted order; names are unique (a repeat is refused earlier). */
function sortedOrder(names: readonly string[]): readonly number[] {
  if (names.length === lastNames.length && names.every((name, index) => name === lastNames[index])) return lastOrder;
  const order = names.map((_, index) => index).sort((a, b) => ((names[a] as string) < (names[b] as string) ? -1 : 1));
  lastNames = names;
  lastOrder = order;
  return order;
}
