import { createRecord, type FieldRecord, type FieldValue } from '../body/field-record';
import { PostbackError, quoteName } from '../errors';
import type { PostbackWarning } from '../events';
import type { FieldIndex } from './field-names';
import { convertValue, isoText, isPlaceholder } from './values';

export interface CanonicalFields {
  readonly names: readonly string[];
  readonly values: readonly FieldValue[];
}

export interface NormalizedFields {
  /** Names of the known fields that are present and valid, in arrival order. */
  readonly knownNames: readonly string[];
  /** Their converted values (dates as Date), index for index with knownNames. */
  readonly knownValues: readonly (string | Date)[];
  /** Every field under its camelCase name, values as received. */
  readonly fields: FieldRecord;
  readonly warnings: readonly PostbackWarning[];
  /**
   * What makes two postbacks equal: known fields as converted (dates as ISO text), unknown ones
   * as received, no absent ones. Names and values index for index, in arrival order.
   */
  readonly canonical: CanonicalFields;
}

/**
 * Names, checks and converts the received fields of one postback. Two keys naming one field
 * (`Payout` and `payout`, or a host key mapped onto `payout`) are a 400: which one to believe
 * would otherwise depend on the format. Empty values and unexpanded placeholders are absent.
 *
 * This runs on every postback, so only `fields` (which listeners see) is a record; the rest
 * are arrays, several times cheaper to fill than dictionary objects or Maps.
 */
export function normalizeFields(received: FieldRecord, index: FieldIndex): NormalizedFields {
  const knownNames: string[] = [];
  const knownValues: (string | Date)[] = [];
  const fields = createRecord();
  const warnings: PostbackWarning[] = [];
  const canonical = { names: [] as string[], values: [] as FieldValue[] };
  // for-in rather than Object.entries, so no pair array per field: records have a null
  // prototype, so for-in sees own keys only, and no stored value is ever undefined.
  for (const key in received) {
    const value = received[key] as FieldValue;
    const { name, spec } = index.resolve(key);
    if (fields[name] !== undefined) {
      throw new PostbackError('field.duplicate', `two keys name the field ${quoteName(name)}`, { field: name });
    }
    fields[name] = value;
    if (spec === undefined) {
      if (value !== '') {
        canonical.names.push(name);
        canonical.values.push(value);
      }
      continue;
    }
    if (typeof value !== 'string') {
      throw new PostbackError('field.invalid', `field "${name}" must be text`, { field: name });
    }
    if (value === '') continue;
    if (isPlaceholder(value)) {
      warnings.push({
        code: 'placeholder.unexpanded',
        field: name,
        value,
        message: `field "${name}" holds the unexpanded placeholder ${value}; treated as absent`,
      });
      continue;
    }
    const converted = convertValue(spec.type, value);
    if (typeof converted === 'string' || converted instanceof Date) {
      knownNames.push(name);
      knownValues.push(converted);
      canonical.names.push(name);
      canonical.values.push(typeof converted === 'string' ? converted : isoText(converted));
    } else if (converted.warnOnly) {
      warnings.push({
        code: 'date.invalid',
        field: name,
        value,
        message: `field "${name}" ${converted.reason}; treated as absent`,
      });
    } else {
      throw new PostbackError('field.invalid', `field "${name}" ${converted.reason}`, { field: name });
    }
  }
  return { knownNames, knownValues, fields, warnings, canonical };
}
