import type { FieldValue } from './body/field-record';
import type { PostbackError, PostbackErrorCode } from './errors';
import type { ACTION_FIELDS, CATALOG_FIELDS, FieldSpec, FieldType, INQUIRY_FIELDS } from './fields/field-specs';

export type { FieldValue } from './body/field-record';

/** How the fields arrived: GET query string, or a POST body in one of three formats. */
export type PostbackFormat = 'query' | 'json' | 'xml' | 'form';

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
  /** The client address the allow-list admitted (IPv4-mapped IPv6 shown as IPv4). */
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

/** A tracked, modified or reversed action (`/actions`), or a cleared one (`/clearing`). */
export interface ActionEvent extends ActionFields, PostbackEventBase {
  readonly kind: 'action';
  readonly trigger: 'lifecycle' | 'clearing';
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

/** Every event the router emits, with its listener arguments. */
export interface PostbackEventMap {
  action: [event: ActionEvent];
  inquiry: [event: InquiryEvent];
  catalog: [event: CatalogEvent];
  /** A postback already handled arrived again; it was answered as a success and not re-emitted. */
  duplicate: [event: PostbackEvent];
  rejected: [rejection: Rejection];
  /** A listener failed or timed out, or the store failed. Never thrown when nobody listens. */
  error: [error: PostbackError];
}

export type PostbackEventName = keyof PostbackEventMap;

export type PostbackListener<K extends PostbackEventName> = (...args: PostbackEventMap[K]) => unknown;

/** The listener methods of an EventEmitter, typed by one event map. */
export interface TypedEventEmitter<M extends Record<keyof M, unknown[]>> {
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
