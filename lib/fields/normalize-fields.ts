import { createRecord, type FieldRecord } from '../body/field-record';
import { PostbackError, quoteName } from '../errors';
import type { PostbackWarning } from '../events';
import type { FieldIndex } from './field-names';
import { convertValue, isPlaceholder } from './values';

export interface NormalizedFields {
  /** Known fields that are present and valid, converted (dates as Date). */
  readonly known: Readonly<Record<string, string | Date>>;
  /** Every field under its camelCase name, values as received. */
  readonly fields: FieldRecord;
  readonly warnings: readonly PostbackWarning[];
  /** What makes two postbacks equal: known fields as converted, unknown ones as received, no absent ones. */
  readonly canonical: FieldRecord;
}

/**
 * Names, checks and converts the received fields of one postback. Two keys naming one field
 * (`Payout` and `payout`, or a host key mapped onto `payout`) are a 400: which one to believe
 * would otherwise depend on the format. Empty values and unexpanded placeholders are absent.
 */
export function normalizeFields(received: FieldRecord, index: FieldIndex): NormalizedFields {
  const known: Record<string, string | Date> = Object.create(null) as Record<string, string | Date>;
  const fields = createRecord();
  const warnings: PostbackWarning[] = [];
  const canonical = createRecord();
  for (const [key, value] of Object.entries(received)) {
    const { name, spec } = index.resolve(key);
    if (Object.hasOwn(fields, name)) {
      throw new PostbackError('field.duplicate', `two keys name the field ${quoteName(name)}`, { field: name });
    }
    fields[name] = value;
    if (spec === undefined) {
      if (value !== '') canonical[name] = value;
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
    if (converted.ok) {
      known[name] = converted.value;
      canonical[name] = converted.value instanceof Date ? converted.value.toISOString() : converted.value;
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
  return { known, fields, warnings, canonical };
}
