import { createHash } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import type { FieldValue } from '../lib/body/field-record';
import { dedupeKey } from '../lib/dedupe/dedupe-key';

/** The canonical text written plainly, recursively, as the format describes it. */
function referenceText(value: FieldValue): string {
  if (typeof value === 'string') return `s${value.length}:${value}`;
  if (Array.isArray(value)) return `a${value.length}:${(value as readonly FieldValue[]).map(referenceText).join('')}`;
  const record = value as Readonly<Record<string, FieldValue>>;
  const keys = Object.keys(record).sort();
  return `o${keys.length}:${keys.map((key) => `${key.length}:${key}${referenceText(record[key] as FieldValue)}`).join('')}`;
}

function referenceKey(names: readonly string[], values: readonly FieldValue[]): string {
  const record: Record<string, FieldValue> = Object.create(null) as Record<string, FieldValue>;
  names.forEach((name, index) => (record[name] = values[index] as FieldValue));
  return `actions:${createHash('sha256').update(referenceText(record), 'utf8').digest('base64url')}`;
}

// Lone and paired surrogates, non-ASCII of every UTF-8 length, and the characters of the format.
const text = fc.string({ unit: 'binary', maxLength: 12 });
const fieldValue = fc.letrec<{ value: FieldValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    text,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(text, tie('value'), { maxKeys: 3 }),
  ),
})).value;
const canonical = fc.uniqueArray(fc.tuple(text, fieldValue), { selector: ([name]) => name, maxLength: 12 });

describe('dedupe key', () => {
  it('is the SHA-256 of the canonical text as the format describes it, for any names and values', () => {
    fc.assert(
      fc.property(canonical, (entries) => {
        const names = entries.map(([name]) => name);
        const values = entries.map(([, value]) => value);
        expect(dedupeKey('actions', { names, values })).to.equal(referenceKey(names, values));
      }),
      { numRuns: 3000 },
    );
  });

  it('does not depend on the order the fields arrived in', () => {
    const names = ['payout', 'actionId', 'subId1'];
    const values = ['1.00', '8882.1', 'user-42'];
    const first = dedupeKey('actions', { names, values });
    expect(dedupeKey('actions', { names: [...names].reverse(), values: [...values].reverse() })).to.equal(first);
    expect(dedupeKey('actions', { names, values: ['1.00', '8882.1', 'user-43'] })).to.not.equal(first);
  });
});
