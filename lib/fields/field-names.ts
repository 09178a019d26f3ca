import type { FieldSpec } from './field-specs';

/**
 * The form a key is matched in: lower case without `_` or `-`, so impact's placeholder name
 * (`ActionId`), snake_case (`action_id`), camelCase (`actionId`) and any capitalisation meet.
 * impact.com lets the partner write the keys of the template, so all of these occur.
 */
export function matchKey(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '');
}

/** The camelCase name an unknown key gets in `fields`: `Foo_Bar` and `FooBar` are `fooBar`. */
export function camelCaseKey(key: string): string {
  if (/[_\-\s]/.test(key)) {
    const words = key.split(/[_\-\s]+/).filter((word) => word !== '');
    return words
      .map((word, index) => {
        const lower = word.toLowerCase();
        return index === 0 ? lower : lower.charAt(0).toUpperCase() + lower.slice(1);
      })
      .join('');
  }
  if (key === key.toUpperCase()) return key.toLowerCase();
  return key.charAt(0).toLowerCase() + key.slice(1);
}

export type FieldIndex = ReadonlyMap<string, FieldSpec>;

/**
 * One lookup table per event kind, built at setup: every name a key may take for each known
 * field, plus the host's own keys from the `fields` option (which win over the defaults).
 */
export function compileFieldIndex(specs: readonly FieldSpec[], hostKeys: ReadonlyMap<string, string>): FieldIndex {
  const index = new Map<string, FieldSpec>();
  for (const spec of specs) {
    index.set(matchKey(spec.name), spec);
    index.set(matchKey(spec.placeholder), spec);
    for (const alias of spec.aliases ?? []) index.set(matchKey(alias), spec);
  }
  for (const [hostKey, target] of hostKeys) {
    const spec = specs.find((candidate) => candidate.name === target);
    if (spec !== undefined) index.set(matchKey(hostKey), spec);
  }
  return index;
}
