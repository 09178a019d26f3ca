export { createPostbackRouter, type PostbackRouter } from './create-postback-router';
export type { HistoryOptions, PostbackRouterOptions, SuccessResponse } from './options';
export type {
  ActionHistory,
  HistoryEntry,
  HistoryFilter,
  HistoryLog,
  HistoryOutcome,
  HistoryPage,
  HistoryQuery,
  HistoryTrigger,
  NewHistoryEntry,
} from './history/history-entry';
export type { HistoryCounts, PostbackHistory } from './history/history';
export { fieldsOfSent, type SentText } from './history/sent-text';
export { createPostbackConsole, type PostbackConsoleOptions } from './console/create-console';
export type { ConsoleReconcileAccount } from './console/context';
export type {
  ActionEvent,
  ActionFields,
  ActionState,
  DeliveryContext,
  InquiryState,
  CatalogEvent,
  CatalogFields,
  FieldValue,
  HandledRequest,
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
export type { Ordering } from './journal/journal';
export type { ReconcileOptions, ReconcileReport, ReconciliationRun } from './reconcile/reconcile';
export type {
  BeginResult,
  InboxClaim,
  InboxEntry,
  InboxQuery,
  InboxRow,
  InboxStats,
  InboxStatus,
  InboxStore,
  JournalReadResult,
  JournalRecord,
  CommitOutcome,
  PostbackStore,
  StoreClaim,
  StoreInbox,
} from './stores/store';
export type { InboxItem, PostbackInbox } from './delivery/inbox';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory/memory-store';
export { SqliteStore, type SqliteStoreOptions } from './stores/sqlite/sqlite-store';
export { RedisStore, type RedisClientLike, type RedisStoreOptions } from './stores/redis/redis-store';
export {
  PostgresStore,
  type PgClient,
  type PgPool,
  type PgPoolClient,
  type PgQueryResult,
  type PostgresStoreOptions,
} from './stores/postgres/postgres-store';
