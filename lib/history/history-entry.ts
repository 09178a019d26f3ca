import type { FieldValue } from '../body/field-record';
import type { PostbackErrorCode } from '../errors';
import type { ActionState, PostbackFormat, PostbackRoute } from '../events';
import type { SentText } from './sent-text';

/**
 * What became of a postback: `delivered` (listeners ran and it was recorded), `duplicate`,
 * `stale`, `stored` (answered by the inbox, delivered later), `rejected` (4xx) or `failed` (5xx,
 * or a delivery from the inbox or reconciliation that failed).
 */
export type HistoryOutcome = 'delivered' | 'duplicate' | 'stale' | 'stored' | 'rejected' | 'failed';

/**
 * What the entry records: a `postback` answered over HTTP, a delivery of a stored postback by
 * the `inbox` worker, or an action `reconciliation` read from impact.com's API and delivered.
 */
export type HistoryTrigger = 'postback' | 'inbox' | 'reconciliation';

/** One answered postback, or one delivery from the inbox or reconciliation. */
export interface HistoryEntry {
  /** Unique in its store; a later entry has a later id. */
  readonly id: string;
  readonly trigger: HistoryTrigger;
  /** When the postback arrived (for an inbox delivery: the arrival it delivers). */
  readonly receivedAt: Date;
  readonly route: PostbackRoute;
  /** How the fields came; null when the request was refused before they were read. */
  readonly format: PostbackFormat | null;
  /** The sender's address; null when it could not be determined. */
  readonly ip: string | null;
  /** The request's path as the host saw it; for a reconciliation, the action's path in impact.com's API. */
  readonly path: string;
  readonly outcome: HistoryOutcome;
  /** The HTTP status answered; null for deliveries from the inbox or reconciliation, which answer nobody. */
  readonly status: number | null;
  /** The error code of a refusal or failure; null otherwise. */
  readonly code: PostbackErrorCode | null;
  /** From arrival (or the delivery's start) to the answer (or the delivery's end), in ms. */
  readonly durationMs: number;
  /** The dedupe key; null when the request was refused before its fields were read. */
  readonly key: string | null;
  /** The journal's subject (`action:<id>`, `inquiry:<id>`); null for catalog postbacks and refusals. */
  readonly subject: string | null;
  readonly actionId: string | null;
  readonly subId1: string | null;
  /**
   * Every field as received, under the key the sender used (the token removed); null when the
   * request was refused before its fields were read.
   */
  readonly fields: Readonly<Record<string, FieldValue>> | null;
}

/**
 * An entry as the receiver hands it to a history log, which gives it its id. When the request
 * sent its fields as text, `sent` holds that text (the token taken out): a log may keep it
 * instead of `fields`, and make the fields again with `fieldsOfSent(format, sent)` as it reads;
 * reading `fields` parses the text.
 */
export type NewHistoryEntry = Omit<HistoryEntry, 'id'> & { readonly sent?: SentText };

/** What `postbacks.history.list()` takes; every filter is optional. */
export interface HistoryQuery {
  readonly actionId?: string;
  readonly subId1?: string;
  readonly outcome?: HistoryOutcome;
  readonly route?: PostbackRoute;
  readonly code?: PostbackErrorCode;
  /** Entries received at or after this time. */
  readonly since?: Date;
  /** Entries received before this time. */
  readonly until?: Date;
  /** Entries per page, 1 to 1,000. Default 50. */
  readonly limit?: number;
  /** The `cursor` of the page before: the page after it. */
  readonly cursor?: string;
}

/** A page of history, newest first. */
export interface HistoryPage {
  readonly entries: readonly HistoryEntry[];
  /** Pass it as `cursor` for the next (older) page; null when this page is the last. */
  readonly cursor: string | null;
}

/** What `postbacks.history.action(id)` gives: the journal's state and every entry of the action. */
export interface ActionHistory {
  /** The journal's state of the action; null when it holds none (never delivered, or a store without a journal to read). */
  readonly state: ActionState | null;
  /** Every entry of the action that history keeps, oldest first. */
  readonly entries: readonly HistoryEntry[];
}

/** A query as a history log receives it: checked, with the retention's bound and a limit. */
export interface HistoryFilter {
  readonly actionId: string | null;
  readonly subId1: string | null;
  readonly outcome: HistoryOutcome | null;
  readonly route: PostbackRoute | null;
  readonly code: PostbackErrorCode | null;
  /** The later of `since` and the retention's start. */
  readonly since: Date;
  readonly until: Date | null;
  readonly limit: number;
  /** Entries older than this id (the cursor's), or null from the newest. */
  readonly before: string | null;
}

/** How many entries of one route, outcome and code arrived in one slice of time. */
export interface HistoryCount {
  /** The slice's start, in ms since the epoch: a multiple of the slice's length. */
  readonly slice: number;
  readonly route: PostbackRoute;
  readonly outcome: HistoryOutcome;
  readonly code: PostbackErrorCode | null;
  readonly count: number;
}

/**
 * Where a store keeps history. A log gives each entry its id, a decimal number (as text) greater
 * than every earlier entry's: cursors are ids. `list` answers newest first, entries older than
 * `before` when it is given, at most `limit`; `prune` removes up to `limit` entries received
 * before `before` and says how many it removed.
 */
export interface HistoryLog {
  /**
   * True when the store writes an answered postback's entry in the postback's own transaction:
   * the router then gives the entry to the claim's `commit` (or the inbox's `add`) instead of
   * appending it, and appends only the entries no commit carries (duplicates, refusals,
   * failures, deliveries from the inbox and reconciliation). Read at each commit: a log may say
   * false until it knows its table is there.
   */
  readonly writtenWithCommits?: boolean;
  append(entry: NewHistoryEntry): void | Promise<void>;
  list(filter: HistoryFilter): readonly HistoryEntry[] | Promise<readonly HistoryEntry[]>;
  prune(before: Date, limit: number): number | Promise<number>;
  /**
   * Counts the entries received at or after `since`, by slice of `sliceMs` (aligned on the
   * epoch), route, outcome and code. Optional: without it, the history counts what `list` reads.
   */
  count?(since: Date, sliceMs: number): readonly HistoryCount[] | Promise<readonly HistoryCount[]>;
}
