/**
 * A value as an SQL literal, for the statements PostgresStore sends several to a query: the
 * simple query protocol takes no parameters, and one query string is one round trip where a
 * statement each was one round trip each. Text is quoted as node-postgres's escapeLiteral
 * quotes it (quotes doubled; with a backslash, an E'' string whose backslashes are doubled
 * too), so it reads the same whatever standard_conforming_strings says.
 */
export function sqlLiteral(value: string | number | null): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new TypeError(`not an integer: ${value}`);
    return String(value);
  }
  const quoted = value.replace(/'/g, "''");
  return value.includes('\\') ? ` E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}
