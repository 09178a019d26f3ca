import { hash } from 'node:crypto';
import { readKeyOf, type DeliveryOutcome } from '../delivery/apply-claim';
import { PostbackError } from '../errors';
import type { ActionEvent, ActionState } from '../events';
import { buildEvent } from '../fields/build-event';
import { compileFieldIndex } from '../fields/field-names';
import { ACTION_FIELDS } from '../fields/field-specs';
import { normalizeFields } from '../fields/normalize-fields';
import { isStale, learnedAfter, sameActionState, stateOf, subjectOf, type Ordering } from '../journal/journal';
import { positiveInteger } from '../stores/optional-module';
import type { JournalReadResult, JournalRecord } from '../stores/store';
import { ActionsApi, type ActionsPage } from './actions-api';

export interface ReconcileOptions {
  /** The partner account's SID (impact.com: Settings → API). */
  readonly accountSid: string;
  /** Its auth token. Used for the Authorization header only. */
  readonly authToken: string;
  /** Actions last updated at or after this time. */
  readonly since: Date;
  /** …and before this time. Default: now. */
  readonly until?: Date;
  /** Default `https://api.impact.com`. */
  readonly baseUrl?: string;
  /** Actions per request. Default 1,000. */
  readonly pageSize?: number;
  /** One request slower than this fails, in ms. Default 30,000. */
  readonly timeoutMs?: number;
}

/** The last reconciliation a router ran, as `postbacks.lastReconciliation()` gives it. */
export interface ReconciliationRun {
  /** When it ended. */
  readonly at: Date;
  readonly since: Date;
  readonly until: Date;
  /** Null when it failed. */
  readonly report: ReconcileReport | null;
  /** Why it failed; null when it did not. */
  readonly error: string | null;
}

/** What one reconciliation found and did. */
export interface ReconcileReport {
  /** Actions the API listed. */
  readonly checked: number;
  /** Listed, and never seen by the journal. */
  readonly missing: number;
  /** Seen, with another status, payout, amount or currency now. */
  readonly changed: number;
  /**
   * Changed, but the journal's state came after its page was requested, or changed by a postback
   * before its turn came: not delivered (the API's state may be the older one); the next run
   * compares it again.
   */
  readonly overtaken: number;
  readonly unchanged: number;
  /** Different, but a PENDING for an action the journal knows as APPROVED or REVERSED. */
  readonly stale: number;
  /** Missing and changed actions emitted and recorded. */
  readonly delivered: number;
  /** Missing and changed actions whose delivery failed (reported as `error`); the next run tries again. */
  readonly failed: number;
  readonly pages: number;
  /** HTTP requests made, 429s included. */
  readonly requests: number;
}

export type FindingKind = 'missing' | 'changed' | 'unchanged' | 'stale';

/** One listed action, as compared with the journal. */
export interface ReconcileFinding {
  readonly kind: FindingKind;
  readonly event: ActionEvent;
  /** The journal's state of the action, null when missing. */
  readonly previous: ActionState | null;
}

export interface ReconcileParts {
  readJournal(subjects: readonly string[]): JournalReadResult | Promise<JournalReadResult>;
  readonly ordering: Ordering;
  /**
   * Delivers a missing or changed action as a postback would be, if the journal's record of it
   * is still the one compared (`readKey`, its key); absent: compare only.
   */
  readonly deliver?: (event: ActionEvent, readKey: string | null) => Promise<DeliveryOutcome>;
  /** Told of every action compared, before it is delivered. */
  readonly onFinding?: (finding: ReconcileFinding) => void;
  /** Aborted once the router shuts down: the request or wait under way ends, and no further page is read. */
  readonly stopped?: AbortSignal;
}

const DEFAULT_BASE_URL = 'https://api.impact.com';
const DEFAULT_PAGE_SIZE = 1000;
const MAX_PAGE_SIZE = 20_000;
// The API's names are the placeholders' names, so the postback field specs read its actions.
const API_FIELDS = compileFieldIndex(ACTION_FIELDS, new Map());

/**
 * Reads every action impact.com's API lists as updated in the range, compares each with the
 * journal, and hands the missing and changed ones to `deliver`. A page is read whole and turned
 * into events before anything of it is delivered, so a page that fails delivers nothing.
 */
export async function reconcileActions(options: ReconcileOptions, parts: ReconcileParts): Promise<ReconcileReport> {
  const settings = checkOptions(options);
  const api = new ActionsApi(parts.stopped === undefined ? settings : { ...settings, stopped: parts.stopped });
  const counts = { checked: 0, missing: 0, changed: 0, overtaken: 0, unchanged: 0, stale: 0, delivered: 0, failed: 0 };
  const path = `/Mediapartners/${encodeURIComponent(options.accountSid)}/Actions/`;
  for await (const page of api.read()) {
    const events = eventsOf(page, path);
    const records = await parts.readJournal(events.map((event) => subjectOf(event) as string));
    const readAt = new Date();
    for (const [index, event] of events.entries()) {
      const record = records[index] ?? null;
      const kind = classify(event, record, parts.ordering);
      counts.checked += 1;
      counts[kind] += 1;
      parts.onFinding?.({ kind, event, previous: stateOf(event, record) as ActionState | null });
      if (parts.deliver === undefined || (kind !== 'missing' && kind !== 'changed')) continue;
      // A postback (or another run) brought the journal's state after this page was requested:
      // impact.com's answer may be the older one. The next run compares it again. A record dated
      // after the journal was read comes from a clock ahead of this one: it says nothing of when.
      if (learnedAfter(record, page.requestedAt) && !learnedAfter(record, readAt)) {
        counts.overtaken += 1;
        continue;
      }
      // Checked before each delivery, not only between pages: a page holds up to 20,000 actions,
      // and a delivery begun after close() would meet a store that is closing or closed.
      throwIfStopped(parts.stopped);
      // Decided again under the claim: a postback may have changed the action since the read.
      const outcome = await parts.deliver(withKey(event, record), readKeyOf(record));
      if (outcome.kind === 'delivered') counts.delivered += 1;
      if (outcome.kind === 'failed') counts.failed += 1;
      if (outcome.kind === 'overtaken') counts.overtaken += 1;
    }
    throwIfStopped(parts.stopped);
  }
  return { ...counts, pages: api.pages, requests: api.requests };
}

function throwIfStopped(stopped: AbortSignal | undefined): void {
  if (stopped?.aborted === true) {
    throw new PostbackError('router.closed', 'reconciliation stopped: this receiver is shutting down');
  }
}

/** The action as the journal sees it: missing, the same state, another one, or a late PENDING. */
function classify(event: ActionEvent, record: JournalRecord | null, ordering: Ordering): FindingKind {
  if (record === null) return 'missing';
  if (sameActionState(event, record)) return 'unchanged';
  return isStale(event, record, ordering) ? 'stale' : 'changed';
}

/** The page's actions as events, or a reconcile.invalid naming the action that does not read. */
function eventsOf(page: ActionsPage, path: string): ActionEvent[] {
  // impact.com's state as of the request: an inbox row that arrived after it may be newer.
  const receivedAt = page.requestedAt;
  return page.actions.map((action, index) => {
    try {
      const event = buildEvent(
        'actions',
        normalizeFields(action, API_FIELDS),
        action,
        { receivedAt, ip: '', format: 'api', route: 'actions', path: '', key: '' },
        true,
      ) as ActionEvent;
      return withMeta(event, { path: path + encodeURIComponent(event.actionId) });
    } catch (error) {
      const id = typeof action['Id'] === 'string' ? `action ${action['Id']}` : `action ${index + 1}`;
      throw new PostbackError(
        'reconcile.invalid',
        `impact.com's answer to ${page.label} is not an Actions list: ${id}: ${(error as Error).message}`,
      );
    }
  });
}

/**
 * The event with its dedupe key: from the action's state and the journal record it changes, so
 * a second run that finds the state delivered already is a duplicate at the store too, and a
 * state the action returns to later (a modification undone) is new again.
 */
function withKey(event: ActionEvent, record: JournalRecord | null): ActionEvent {
  const state = [event.actionId, event.status, event.payout, event.amount, event.currency, record?.['key']];
  return withMeta(event, { key: `reconciliation:${hash('sha256', JSON.stringify(state), 'base64url')}` });
}

function withMeta(event: ActionEvent, meta: Partial<ActionEvent['meta']>): ActionEvent {
  return Object.freeze({ ...event, meta: Object.freeze({ ...event.meta, ...meta }) });
}

function checkOptions(options: ReconcileOptions) {
  const { accountSid, authToken, since } = options;
  if (typeof accountSid !== 'string' || accountSid === '')
    throw new TypeError('option accountSid must be a non-empty string');
  if (typeof authToken !== 'string' || authToken === '')
    throw new TypeError('option authToken must be a non-empty string');
  if (!(since instanceof Date) || Number.isNaN(since.getTime()))
    throw new TypeError('option since must be a valid Date');
  const until = options.until ?? new Date();
  if (!(until instanceof Date) || Number.isNaN(until.getTime()))
    throw new TypeError('option until must be a valid Date');
  if (until.getTime() <= since.getTime()) throw new TypeError('option until must be later than option since');
  const baseUrl = options.baseUrl ?? DEFAULT_BASE_URL;
  let protocol = '';
  try {
    protocol = new URL(baseUrl).protocol;
  } catch {
    // Reported below.
  }
  if (protocol !== 'https:' && protocol !== 'http:') throw new TypeError('option baseUrl must be an http(s) URL');
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE_SIZE) {
    throw new TypeError(`option pageSize must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  }
  const timeoutMs = positiveInteger('timeoutMs', options.timeoutMs ?? 30_000);
  return { accountSid, authToken, since, until, baseUrl, pageSize, timeoutMs };
}
