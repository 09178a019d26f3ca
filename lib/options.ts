import bytes from 'bytes';
import type { Ordering } from './journal/journal';
import { MemoryStore } from './stores/memory/memory-store';
import type { PostbackStore, StoreInbox } from './stores/store';
import type { HistorySettings } from './history/history';
import { ALL_FIELD_NAMES, type KnownFieldName } from './fields/field-specs';
import { compileAllowList, type IpMatcher } from './ip/allow-list';
import type { ProxyTrust } from './ip/client-ip';
import { validateRangeList } from './ip/ip-ranges';

/** The exact success answer impact.com's "Success Response" setting expects. */
export interface SuccessResponse {
  /** A 2xx status. Default 200. */
  readonly status?: number;
  /** A fixed body; without it the body follows the Accept header. */
  readonly body?: string;
  /** Content-Type of a fixed body. Default `text/plain; charset=utf-8`. */
  readonly contentType?: string;
}

/** `T`: what listeners get as `ctx.transaction`, set by the store (undefined but with PostgresStore). */
export interface PostbackRouterOptions<T = undefined> {
  /** IP addresses and CIDR ranges impact.com sends from. Required. */
  readonly allowedIps: readonly string[];
  /**
   * Who may set X-Forwarded-For: `false` (default: the socket address decides), the number of
   * proxies in front of the app, or the addresses or CIDR ranges of those proxies.
   */
  readonly trustProxy?: false | number | readonly string[];
  /** A shared secret (or several, while rotating) required as `?token=` or `X-Postback-Token`. */
  readonly token?: string | readonly string[];
  /** The host's own template keys, mapped to known field names: `{ user: 'subId1' }`. */
  readonly fields?: Readonly<Record<string, KnownFieldName>>;
  /** Largest body, in bytes or as `'100kb'`. Default `'100kb'`, at most `'10mb'`. */
  readonly limit?: number | string;
  /** Most fields one postback may carry. Default 100. */
  readonly maxFields?: number;
  readonly successResponse?: SuccessResponse;
  /** How long listeners may take before the answer is 503, in ms. Default 10,000. */
  readonly listenerTimeout?: number;
  /** Where handled postbacks and the journal are kept. Default: a new MemoryStore. */
  readonly store?: PostbackStore<T>;
  /**
   * `'final-states'` (default): a lifecycle PENDING for an action known as APPROVED or REVERSED
   * is emitted as `stale`, not `action`. `'none'`: every postback is emitted as `action`.
   */
  readonly ordering?: Ordering;
  /**
   * `'direct'` (default): impact.com's request waits while listeners run, and is answered by
   * their outcome. `'inbox'`: the postback is stored and answered at once, then delivered from
   * the store's inbox with retries (SqliteStore or PostgresStore).
   */
  readonly delivery?: 'direct' | 'inbox';
  /** With `delivery: 'inbox'`: attempts after which a stored postback is dead. Default 12. */
  readonly maxAttempts?: number;
  /**
   * With `delivery: 'inbox'`: the wait before attempt n + 1 is `baseMs × 2^(n − 1)`, at most
   * `maxMs`, less a random part of up to half. Default `{ baseMs: 5000, maxMs: 3_600_000 }`.
   */
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number };
  /** With `delivery: 'inbox'`: how many stored postbacks are delivered at once. Default 4. */
  readonly concurrency?: number;
  /**
   * What happened to every postback, read through `postbacks.history`: on by default (`{
   * retentionMs: 30 days, maxRejectedPerMinute: 600 }`), an object sets either; `false` turns it
   * off. Kept where the store keeps it (see docs/history.md).
   */
  readonly history?: boolean | HistoryOptions;
  /**
   * Spans and metrics through OpenTelemetry when the host has `@opentelemetry/api` installed (an
   * optional peer; no SDK is bundled): a span per postback, inbox delivery and reconciliation,
   * a counter and a duration histogram. Default true; false never loads the API.
   */
  readonly telemetry?: boolean;
}

export interface HistoryOptions {
  /** How long entries are kept, in ms. Default 30 days. */
  readonly retentionMs?: number;
  /** Refused postbacks stored per minute at most; the excess is counted, not stored. Default 600. */
  readonly maxRejectedPerMinute?: number;
}

/** How postbacks reach the listeners, with what the inbox needs. */
export type DeliveryMode =
  | { readonly mode: 'direct' }
  | {
      readonly mode: 'inbox';
      readonly inbox: StoreInbox<unknown>;
      readonly maxAttempts: number;
      readonly backoff: { readonly baseMs: number; readonly maxMs: number };
      readonly concurrency: number;
    };

export interface NormalizedOptions {
  readonly isAllowedIp: IpMatcher;
  readonly proxyTrust: ProxyTrust;
  readonly tokens: readonly string[];
  readonly hostFieldKeys: ReadonlyMap<string, KnownFieldName>;
  readonly limit: number;
  readonly maxFields: number;
  readonly successResponse: Readonly<Required<Pick<SuccessResponse, 'status'>> & SuccessResponse> | null;
  readonly listenerTimeout: number;
  readonly store: PostbackStore<unknown>;
  readonly ordering: Ordering;
  readonly delivery: DeliveryMode;
  /** Null with `history: false`. */
  readonly history: HistorySettings | null;
  readonly telemetry: boolean;
}

const OPTION_NAMES = [
  'allowedIps',
  'trustProxy',
  'token',
  'fields',
  'limit',
  'maxFields',
  'successResponse',
  'listenerTimeout',
  'store',
  'ordering',
  'delivery',
  'maxAttempts',
  'backoff',
  'concurrency',
  'history',
  'telemetry',
] as const;

const MAX_LIMIT = 10 * 1024 * 1024;
const SIZE = /^\d+(?:\.\d+)?\s*(?:b|kb|mb)?$/i;
const MAX_TIMER = 2 ** 31 - 1;

/**
 * Checks and copies the options once, at setup: every mistake throws a TypeError that names
 * the option, and request handling only reads the result. The caller's objects are not kept.
 */
export function normalizeOptions(input: unknown): NormalizedOptions {
  const options = asOptionsObject(input);
  const store = normalizeStore(options['store']);
  return {
    isAllowedIp: compileAllowList(validateRangeList('allowedIps', options['allowedIps'])),
    proxyTrust: normalizeTrustProxy(options['trustProxy']),
    tokens: normalizeTokens(options['token']),
    hostFieldKeys: normalizeFieldKeys(options['fields']),
    limit: normalizeLimit(options['limit']),
    maxFields: integerIn('maxFields', options['maxFields'], 100, 1, 1000),
    successResponse: normalizeSuccessResponse(options['successResponse']),
    listenerTimeout: integerIn('listenerTimeout', options['listenerTimeout'], 10_000, 1, MAX_TIMER),
    store,
    ordering: normalizeOrdering(options['ordering']),
    delivery: normalizeDelivery(options, store),
    history: normalizeHistory(options['history']),
    telemetry: normalizeTelemetry(options['telemetry']),
  };
}

function asOptionsObject(input: unknown): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new TypeError('createPostbackRouter(options) needs an options object with at least allowedIps');
  }
  if ('socket' in input && 'headers' in input) {
    throw new TypeError(
      'createPostbackRouter was used as middleware; call createPostbackRouter({ allowedIps }) and mount its .router',
    );
  }
  const options = input as Record<string, unknown>;
  for (const key of Object.keys(options)) {
    if ((OPTION_NAMES as readonly string[]).includes(key)) continue;
    const suggestion = OPTION_NAMES.find((name) => isNear(name, key));
    throw new TypeError(`unknown option "${key}"${suggestion === undefined ? '' : `; did you mean "${suggestion}"?`}`);
  }
  if (options['allowedIps'] === undefined) {
    throw new TypeError('option allowedIps is required: the IP ranges impact.com sends postbacks from');
  }
  return options;
}

function normalizeTrustProxy(value: unknown): ProxyTrust {
  if (value === undefined || value === false || value === 0) return { kind: 'none' };
  if (value === true) {
    throw new TypeError(
      'option trustProxy: true is refused, since it lets any client forge X-Forwarded-For; pass the number of proxies in front of the app, or their addresses',
    );
  }
  if (typeof value === 'number') {
    return { kind: 'hops', hops: integerIn('trustProxy', value, 0, 1, 16) };
  }
  if (Array.isArray(value)) {
    return { kind: 'ranges', isProxy: compileAllowList(validateRangeList('trustProxy', value)) };
  }
  throw new TypeError('option trustProxy must be false, a number of proxies, or an array of proxy addresses');
}

function normalizeTokens(value: unknown): readonly string[] {
  if (value === undefined) return [];
  const tokens: unknown[] = Array.isArray(value) ? value : [value];
  if (tokens.length === 0) throw new TypeError('option token is an empty array; omit it or give a token');
  return Object.freeze(
    tokens.map((token, index) => {
      if (typeof token !== 'string' || token === '' || /\s/.test(token)) {
        throw new TypeError(
          `option token${Array.isArray(value) ? `[${index}]` : ''} must be a non-empty string without spaces`,
        );
      }
      return token;
    }),
  );
}

function normalizeFieldKeys(value: unknown): ReadonlyMap<string, KnownFieldName> {
  const keys = new Map<string, KnownFieldName>();
  if (value === undefined) return keys;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError("option fields must be an object mapping your keys to field names, such as { user: 'subId1' }");
  }
  for (const [key, target] of Object.entries(value as Record<string, unknown>)) {
    if (typeof target !== 'string' || !ALL_FIELD_NAMES.has(target)) {
      throw new TypeError(
        `option fields.${key} must name a known field (such as "actionId" or "subId1"), got ${JSON.stringify(target)}`,
      );
    }
    keys.set(key, target as KnownFieldName);
  }
  return keys;
}

function normalizeLimit(value: unknown): number {
  if (value === undefined) return 100 * 1024;
  // bytes.parse falls back to parseInt, so "100 kilobytes" would quietly mean 100 bytes.
  const parsed =
    typeof value === 'number' ? value : typeof value === 'string' && SIZE.test(value) ? bytes.parse(value) : null;
  if (parsed === null || !Number.isSafeInteger(parsed) || parsed <= 0 || parsed > MAX_LIMIT) {
    throw new TypeError(
      `option limit ${JSON.stringify(value)} is invalid: give bytes or a size such as "100kb", at most "10mb"`,
    );
  }
  return parsed;
}

function normalizeSuccessResponse(value: unknown): NormalizedOptions['successResponse'] {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null) {
    throw new TypeError('option successResponse must be an object such as { status: 200, body: "OK" }');
  }
  const { status, body, contentType } = value as Record<string, unknown>;
  const normalizedStatus = integerIn('successResponse.status', status, 200, 200, 299);
  if (body !== undefined && typeof body !== 'string')
    throw new TypeError('option successResponse.body must be a string');
  if (contentType !== undefined && (typeof contentType !== 'string' || !/^[\w.+-]+\/[\w.+-]+/.test(contentType))) {
    throw new TypeError('option successResponse.contentType must be a media type such as "text/plain"');
  }
  if ((normalizedStatus === 204 || normalizedStatus === 205) && body !== undefined && body !== '') {
    throw new TypeError(`option successResponse.body must be empty with status ${normalizedStatus}`);
  }
  return Object.freeze({
    status: normalizedStatus,
    ...(body === undefined ? {} : { body }),
    ...(contentType === undefined ? {} : { contentType }),
  });
}

const DAY_MS = 86_400_000;

function normalizeHistory(value: unknown): HistorySettings | null {
  if (value === false) return null;
  if (value !== true && value !== undefined && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    throw new TypeError('option history must be true, false or an object such as { retentionMs: 2_592_000_000 }');
  }
  const { retentionMs, maxRejectedPerMinute, ...rest } = (value === true || value === undefined ? {} : value) as Record<
    string,
    unknown
  >;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) {
    throw new TypeError(`unknown option history.${unknown}; history takes retentionMs and maxRejectedPerMinute`);
  }
  return {
    retentionMs: integerIn('history.retentionMs', retentionMs, 30 * DAY_MS, 60_000, 3650 * DAY_MS),
    maxRejectedPerMinute: integerIn('history.maxRejectedPerMinute', maxRejectedPerMinute, 600, 0, 1_000_000),
  };
}

function normalizeTelemetry(value: unknown): boolean {
  if (value === undefined) return true;
  if (typeof value !== 'boolean') throw new TypeError('option telemetry must be true or false');
  return value;
}

function normalizeStore(value: unknown): PostbackStore<unknown> {
  if (value === undefined) return new MemoryStore();
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as Record<string, unknown>)['begin'] !== 'function'
  ) {
    throw new TypeError(
      'option store must be a store such as new MemoryStore(), new SqliteStore(...), new RedisStore(...) or new PostgresStore(...) (an object with a begin method)',
    );
  }
  return value as PostbackStore<unknown>;
}

const INBOX_OPTIONS = ['maxAttempts', 'backoff', 'concurrency'] as const;

function normalizeDelivery(options: Record<string, unknown>, store: PostbackStore<unknown>): DeliveryMode {
  const delivery = options['delivery'];
  if (delivery === undefined || delivery === 'direct') {
    const stray = INBOX_OPTIONS.find((name) => options[name] !== undefined);
    if (stray !== undefined) throw new TypeError(`option ${stray} applies only with delivery: 'inbox'`);
    return { mode: 'direct' };
  }
  if (delivery !== 'inbox') {
    throw new TypeError(`option delivery must be "direct" or "inbox", got ${JSON.stringify(delivery)}`);
  }
  const inbox = (store as { inbox?: unknown }).inbox;
  if (typeof inbox !== 'object' || inbox === null || typeof (inbox as Record<string, unknown>)['add'] !== 'function') {
    throw new TypeError(
      "option delivery: 'inbox' needs a store that keeps an inbox, SqliteStore or PostgresStore: an inbox must be durable " +
        '(MemoryStore forgets on restart) and store a postback with its key in one transaction (RedisStore cannot)',
    );
  }
  const backoff = options['backoff'];
  if (backoff !== undefined && (typeof backoff !== 'object' || backoff === null || Array.isArray(backoff))) {
    throw new TypeError('option backoff must be an object such as { baseMs: 1000, maxMs: 3600000 }');
  }
  const { baseMs, maxMs } = (backoff ?? {}) as Record<string, unknown>;
  const normalizedBackoff = {
    baseMs: integerIn('backoff.baseMs', baseMs, 5000, 1, MAX_TIMER),
    maxMs: integerIn('backoff.maxMs', maxMs, 3_600_000, 1, MAX_TIMER),
  };
  if (normalizedBackoff.maxMs < normalizedBackoff.baseMs) {
    throw new TypeError('option backoff.maxMs must not be less than backoff.baseMs');
  }
  return {
    mode: 'inbox',
    inbox: inbox as StoreInbox<unknown>,
    maxAttempts: integerIn('maxAttempts', options['maxAttempts'], 12, 1, 1000),
    backoff: normalizedBackoff,
    concurrency: integerIn('concurrency', options['concurrency'], 4, 1, 1000),
  };
}

function normalizeOrdering(value: unknown): Ordering {
  if (value === undefined) return 'final-states';
  if (value === 'final-states' || value === 'none') return value;
  throw new TypeError(`option ordering must be "final-states" or "none", got ${JSON.stringify(value)}`);
}

function integerIn(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(
      `option ${name} must be an integer from ${min} to ${max}, got ${typeof value === 'number' ? value : typeof value}`,
    );
  }
  return value;
}

/** True for likely typos: a different case, or up to two edits apart. */
function isNear(name: string, typo: string): boolean {
  if (name.toLowerCase() === typo.toLowerCase()) return true;
  const a = name.toLowerCase();
  const b = typo.toLowerCase();
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return (previous[b.length] ?? Infinity) <= 2;
}
