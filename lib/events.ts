import type { EventEmitter } from 'node:events';
import type { FieldValue } from './body/field-record';
import type { PostbackError, PostbackErrorCode } from './errors';
import type { ACTION_FIELDS, CATALOG_FIELDS, FieldSpec, FieldType, INQUIRY_FIELDS } from './fields/field-specs';

export type { FieldValue } from './body/field-record';

/**
 * How the fields arrived: GET query string, or a POST body in one of three formats; `api` for
 * an action that reconciliation read from impact.com's Actions API.
 */
export type PostbackFormat = 'query' | 'json' | 'xml' | 'form' | 'api';

/** The route a postback came in on, relative to where the router is mounted. */
export type PostbackRoute = 'actions' | 'clearing' | 'inquiries' | 'catalog';

export type PostbackWarningCode = 'placeholder.unexpanded' | 'date.invalid';

export interface PostbackWarning {
  readonly code: PostbackWarningCode;
  /** camelCase field name. */
  readonly field: string;
  /** The value as received. */
  readonly value: string;
  readonly message: string;
}

export interface PostbackMeta {
  readonly receivedAt: Date;
  /**
   * The client address the allow-list admitted (IPv4-mapped IPv6 shown as IPv4); empty for an
   * action read by reconciliation.
   */
  readonly ip: string;
  readonly format: PostbackFormat;
  readonly route: PostbackRoute;
  /** Request path, without the query string (which may hold the token). */
  readonly path: string;
  /** Dedupe key: equal for equal postbacks on one route, whatever format they came in. */
  readonly key: string;
}

interface PostbackEventBase {
  /** Every received field, keys camelCased (known fields under their own name), values as received. */
  readonly fields: Readonly<Record<string, FieldValue>>;
  /** Every received field with its key exactly as sent; the token is removed. */
  readonly raw: Readonly<Record<string, FieldValue>>;
  readonly warnings: readonly PostbackWarning[];
  readonly meta: PostbackMeta;
}

type ValueOf<T extends FieldType> = T extends 'date' ? Date : string;
type OptionalFields<S extends readonly FieldSpec[]> = {
  readonly [F in S[number] as F['name']]?: ValueOf<F['type']>;
};

export type ActionFields = Omit<OptionalFields<typeof ACTION_FIELDS>, 'actionId'>;
export type InquiryFields = Omit<OptionalFields<typeof INQUIRY_FIELDS>, 'inquiryId'>;
export type CatalogFields = OptionalFields<typeof CATALOG_FIELDS>;

/**
 * A tracked, modified or reversed action (`/actions`, trigger `lifecycle`), a cleared one
 * (`/clearing`), or one whose state reconciliation found in impact.com's Actions API.
 */
export interface ActionEvent extends ActionFields, PostbackEventBase {
  readonly kind: 'action';
  readonly trigger: 'lifecycle' | 'clearing' | 'reconciliation';
  readonly actionId: string;
}

/** An action inquiry created or resolved (`/inquiries`). */
export interface InquiryEvent extends InquiryFields, PostbackEventBase {
  readonly kind: 'inquiry';
  readonly inquiryId: string;
  /** 'created' while the resolution status is empty or UNRESOLVED, else 'resolved'. */
  readonly state: 'created' | 'resolved';
}

/** A product catalog change (`/catalog`); impact.com documents no fields, so most are in `fields`. */
export interface CatalogEvent extends CatalogFields, PostbackEventBase {
  readonly kind: 'catalog';
}

export type PostbackEvent = ActionEvent | InquiryEvent | CatalogEvent;

/** A request answered 4xx: for monitoring (a wrong template, a wrong allow-list, an attack). */
export interface Rejection {
  readonly code: PostbackErrorCode;
  readonly status: number;
  readonly message: string;
  /** The client address, or null when it could not be determined. */
  readonly ip: string | null;
  readonly method: string;
  readonly path: string;
}

/** One answered request, for metrics and logs: the `handled` event. */
export interface HandledRequest {
  readonly route: PostbackRoute;
  /** How the fields came; null when the request was refused before its fields were read. */
  readonly format: PostbackFormat | null;
  readonly status: number;
  /** The error code of a refusal or failure; null for a success. */
  readonly code: PostbackErrorCode | null;
  /**
   * `delivered` (listeners ran and it was recorded), `duplicate`, `stale`, `stored` (answered
   * by the inbox, delivered later), `rejected` (4xx) or `failed` (5xx).
   */
  readonly outcome: 'delivered' | 'duplicate' | 'stale' | 'stored' | 'rejected' | 'failed';
  /** From the request's arrival at the router to its answer, in ms. */
  readonly durationMs: number;
  /** The client address, or null when it could not be determined. */
  readonly ip: string | null;
}

/** The last state the journal recorded for an action, before the postback being delivered. */
export interface ActionState {
  /** The status as last known (a postback without one keeps the earlier status). */
  readonly status: string | null;
  readonly payout: string | null;
  readonly amount: string | null;
  readonly currency: string | null;
  /** Which kind of postback recorded it, or `reconciliation`. */
  readonly trigger: ActionEvent['trigger'];
  /** The dedupe key of the postback that recorded it. */
  readonly key: string;
  readonly receivedAt: Date;
}

/** The last state the journal recorded for an inquiry, before the postback being delivered. */
export interface InquiryState {
  readonly state: InquiryEvent['state'];
  readonly resolutionStatus: string | null;
  readonly expectedPayout: string | null;
  readonly finalPayout: string | null;
  readonly currency: string | null;
  readonly key: string;
  readonly receivedAt: Date;
}

/**
 * The second argument of every delivery listener.
 * - `previous`: the journal's last state of this action or inquiry before this postback, or null
 *   on first sight (always null for catalog postbacks, which have no subject).
 * - `transaction`: with PostgresStore, the client of the open transaction that records this
 *   postback: what a listener writes through it commits with the postback's record, or rolls
 *   back with it. `undefined` with the other stores.
 * - `idempotencyKey`: what to make a write idempotent on (a unique key in your table) with a store
 *   whose claims are not transactions: the same for this change of the action however it comes
 *   (impact.com's retry, the inbox, a delivery again after a crash, reconciliation finding it),
 *   and different for every other change. A move into APPROVED or REVERSED has one key whatever
 *   it moves from. Catalog postbacks: their dedupe key.
 * - `signal`: aborted when the router gives the delivery up (listeners past the timeout with
 *   PostgresStore, past the give-up bound with the other stores, or `close()` past its timeout):
 *   write nothing more, as what is written then is not recorded with the postback.
 */
export interface DeliveryContext<S, T> {
  readonly previous: S | null;
  readonly transaction: T;
  readonly idempotencyKey: string;
  readonly signal: AbortSignal;
}

/** Every event the router emits, with its listener arguments; `T` is the store's transaction type. */
export interface PostbackEventMap<T = undefined> {
  action: [event: ActionEvent, ctx: DeliveryContext<ActionState, T>];
  inquiry: [event: InquiryEvent, ctx: DeliveryContext<InquiryState, T>];
  catalog: [event: CatalogEvent, ctx: DeliveryContext<never, T>];
  /**
   * A late copy of an older state: a lifecycle postback that would move an action back from a
   * final status (APPROVED or REVERSED) to PENDING, or an inquiry's creation after it was
   * resolved. Not emitted as `action` or `inquiry`; answered 2xx; the journal keeps the newer
   * state. `event.kind` tells the two apart; `ctx.previous` is the state kept.
   */
  stale: [event: ActionEvent | InquiryEvent, ctx: DeliveryContext<ActionState | InquiryState, T>];
  /** A postback already handled arrived again; it was answered as a success and not re-emitted. */
  duplicate: [event: PostbackEvent];
  /**
   * With `delivery: 'inbox'`: a stored postback failed `maxAttempts` times and will not be tried
   * again until `postbacks.inbox.retry()`. The event is null if the row no longer builds one.
   */
  dead: [event: PostbackEvent | null, error: PostbackError];
  rejected: [rejection: Rejection];
  /** Every answered postback request, whatever its outcome. Costs nothing while nobody listens. */
  handled: [request: HandledRequest];
  /** A listener failed or timed out, or the store failed. Never thrown when nobody listens. */
  error: [error: PostbackError];
}

export type PostbackEventName = keyof PostbackEventMap;

export type PostbackListener<K extends PostbackEventName, T = undefined> = (...args: PostbackEventMap<T>[K]) => unknown;

/** The methods TypedEventEmitter types by its event map. */
type TypedMethods =
  | 'on'
  | 'addListener'
  | 'prependListener'
  | 'once'
  | 'prependOnceListener'
  | 'off'
  | 'removeListener'
  | 'removeAllListeners'
  | 'listenerCount'
  | 'listeners'
  | 'rawListeners'
  | 'emit';

/**
 * Node's EventEmitter with its listener methods typed by one event map: it is an EventEmitter
 * (for `events.once`, `events.on`, `setMaxListeners`, `eventNames`), while `on('acton', ...)` or
 * a listener with the wrong arguments does not compile.
 */
export interface TypedEventEmitter<M extends Record<keyof M, unknown[]>> extends Omit<EventEmitter, TypedMethods> {
  rawListeners<K extends keyof M>(eventName: K): ((...args: M[K]) => unknown)[];
  emit<K extends keyof M>(eventName: K, ...args: M[K]): boolean;
  on<K extends keyof M>(eventName: K, listener: (...args: M[K]) => unknown): this;
  addListener<K extends keyof M>(eventName: K, listener: (...args: M[K]) => unknown): this;
  prependListener<K extends keyof M>(eventName: K, listener: (...args: M[K]) => unknown): this;
  once<K extends keyof M>(eventName: K, listener: (...args: M[K]) => unknown): this;
  prependOnceListener<K extends keyof M>(eventName: K, listener: (...args: M[K]) => unknown): this;
  off<K extends keyof M>(eventName: K, listener: (...args: M[K]) => unknown): this;
  removeListener<K extends keyof M>(eventName: K, listener: (...args: M[K]) => unknown): this;
  removeAllListeners(eventName?: keyof M): this;
  listenerCount(eventName: keyof M): number;
  listeners<K extends keyof M>(eventName: K): ((...args: M[K]) => unknown)[];
}
