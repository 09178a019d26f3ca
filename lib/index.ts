export { createPostbackRouter, type PostbackRouter } from './create-postback-router';
export type { PostbackRouterOptions, SuccessResponse } from './options';
export type {
  ActionEvent,
  ActionFields,
  CatalogEvent,
  CatalogFields,
  FieldValue,
  InquiryEvent,
  InquiryFields,
  PostbackEvent,
  PostbackEventMap,
  PostbackEventName,
  PostbackFormat,
  PostbackListener,
  PostbackMeta,
  PostbackRoute,
  PostbackWarning,
  PostbackWarningCode,
  Rejection,
  TypedEventEmitter,
} from './events';
export type { ActionFieldName, CatalogFieldName, InquiryFieldName, KnownFieldName } from './fields/field-specs';
export {
  ERROR_STATUS,
  PostbackError,
  isPostbackError,
  type PostbackErrorCode,
  type PostbackErrorDetails,
} from './errors';
export type { ClaimResult, DedupeStore } from './dedupe/store';
export { MemoryStore, type MemoryStoreOptions } from './dedupe/memory-store';
export { SqliteStore, type SqliteStoreOptions } from './dedupe/sqlite-store';
export { RedisStore, type RedisClientLike, type RedisStoreOptions } from './dedupe/redis-store';
