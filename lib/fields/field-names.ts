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

/** What a received key names: a known field (with its spec) or an unknown one. */
export interface ResolvedKey {
  readonly name: string;
  readonly spec: FieldSpec | undefined;
}

export interface FieldIndex {
  resolve(key: string): ResolvedKey;
}

// A template's keys are the same on every postback, so resolved keys are cached; the bound
// keeps a sender that invents keys from growing the cache.
const RESOLVED_KEYS_CACHED = 512;

/**
 * One lookup table per event kind, built at setup: every name a key may take for each known
 * field, plus the host's own keys from the `fields` option (which win over the defaults).
 */
export function compileFieldIndex(specs: readonly FieldSpec[], hostKeys: ReadonlyMap<string, string>): FieldIndex {
  const byMatchKey = new Map<string, FieldSpec>();
  for (const spec of specs) {
    byMatchKey.set(matchKey(spec.name), spec);
    byMatchKey.set(matchKey(spec.placeholder), spec);
    for (const alias of spec.aliases ?? []) byMatchKey.set(matchKey(alias), spec);
  }
  for (const [hostKey, target] of hostKeys) {
    const spec = specs.find((candidate) => candidate.name === target);
    if (spec !== undefined) byMatchKey.set(matchKey(hostKey), spec);
  }
  const cache = new Map<string, ResolvedKey>();
  return {
    resolve(key) {
      let resolved = cache.get(key);
      if (resolved === undefined) {
        const spec = byMatchKey.get(matchKey(key));
        resolved = { name: spec === undefined ? camelCaseKey(key) : spec.name, spec };
        if (cache.size < RESOLVED_KEYS_CACHED) cache.set(key, resolved);
      }
      return resolved;
    },
  };
}
