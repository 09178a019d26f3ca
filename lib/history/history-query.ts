import { ERROR_STATUS, type PostbackErrorCode } from '../errors';
import type { PostbackRoute } from '../events';
import { ROUTE_EVENTS } from '../core/routes';
import type { HistoryFilter, HistoryOutcome, HistoryQuery } from './history-entry';

export const HISTORY_OUTCOMES: readonly HistoryOutcome[] = [
  'delivered',
  'duplicate',
  'stale',
  'stored',
  'rejected',
  'failed',
];
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

const QUERY_KEYS = new Set(['actionId', 'subId1', 'outcome', 'route', 'code', 'since', 'until', 'limit', 'cursor']);
// Every store's ids are decimal: a sequence number or a bigserial.
const CURSOR = /^[1-9]\d{0,18}$/;
const MAX_ID = 9_223_372_036_854_775_807n;

function fail(name: string, what: string, value: unknown): never {
  throw new TypeError(
    `history.list(): ${name} must be ${what}; got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`,
  );
}

function textOrNull(query: Readonly<Record<string, unknown>>, name: string): string | null {
  const value = query[name];
  if (value === undefined) return null;
  if (typeof value !== 'string' || value === '') fail(name, 'a non-empty string', value);
  return value;
}

function oneOf<V extends string>(
  query: Readonly<Record<string, unknown>>,
  name: string,
  allowed: readonly V[],
): V | null {
  const value = query[name];
  if (value === undefined) return null;
  if (!(allowed as readonly unknown[]).includes(value)) fail(name, `one of ${allowed.join(', ')}`, value);
  return value as V;
}

function dateOrNull(query: Readonly<Record<string, unknown>>, name: string): Date | null {
  const value = query[name];
  if (value === undefined) return null;
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) fail(name, 'a valid Date', value);
  return value;
}

/**
 * Checks a query as `history.list()` got it and turns it into a log's filter: a mistake throws a
 * TypeError naming the option. `retainedSince` is the oldest time history keeps.
 */
export function toHistoryFilter(query: HistoryQuery | undefined, retainedSince: Date): HistoryFilter {
  // Checked at run time too: JavaScript callers pass anything.
  const raw: unknown = query;
  if (raw !== undefined && (typeof raw !== 'object' || raw === null)) fail('the query', 'an object', raw);
  const given = (query ?? {}) as Readonly<Record<string, unknown>>;
  for (const key of Object.keys(given)) {
    if (!QUERY_KEYS.has(key)) fail(key, `left out: it is not a filter (${[...QUERY_KEYS].join(', ')})`, given[key]);
  }
  const limit = given['limit'] === undefined ? DEFAULT_PAGE_SIZE : given['limit'];
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    fail('limit', `a whole number from 1 to ${MAX_PAGE_SIZE}`, limit);
  }
  const cursor = textOrNull(given, 'cursor');
  // Ids are at most 2^63 − 1 (PostgreSQL's bigint).
  if (cursor !== null && (!CURSOR.test(cursor) || BigInt(cursor) > MAX_ID)) {
    fail('cursor', 'a cursor that list() gave', cursor);
  }
  const since = dateOrNull(given, 'since');
  return {
    actionId: textOrNull(given, 'actionId'),
    subId1: textOrNull(given, 'subId1'),
    outcome: oneOf(given, 'outcome', HISTORY_OUTCOMES),
    route: oneOf(given, 'route', Object.keys(ROUTE_EVENTS) as PostbackRoute[]),
    code: oneOf(given, 'code', Object.keys(ERROR_STATUS) as PostbackErrorCode[]),
    since: since === null || since < retainedSince ? retainedSince : since,
    until: dateOrNull(given, 'until'),
    limit,
    before: cursor,
  };
}
