import { hash } from 'node:crypto';
import type { ActionEvent, ActionState, InquiryEvent, InquiryState, PostbackEvent } from '../events';
import { isoText } from '../fields/values';
import type { JournalRecord } from '../stores/store';

/**
 * How postbacks of one action or inquiry are ordered: `final-states` keeps a late PENDING from
 * undoing an APPROVED or REVERSED action, and a late creation from reopening a resolved inquiry;
 * `none` delivers every postback as it comes.
 */
export type Ordering = 'final-states' | 'none';

// impact.com: PENDING → APPROVED or REVERSED, and no modification after either (the Partner
// API's Action states; shared/impact/partner-actions-api.md).
const FINAL_STATUSES: ReadonlySet<unknown> = new Set(['APPROVED', 'REVERSED']);

/** Whether a status (an event's, or a record's, which may hold anything) is APPROVED or REVERSED. */
function isFinal(status: unknown): boolean {
  return FINAL_STATUSES.has(status);
}

/** What the journal keeps a record of: one action (both routes) or one inquiry; catalog: nothing. */
export function subjectOf(event: PostbackEvent): string | null {
  switch (event.kind) {
    case 'action':
      return `action:${event.actionId}`;
    case 'inquiry':
      return `inquiry:${event.inquiryId}`;
    case 'catalog':
      return null;
  }
}

/**
 * True for a postback that would move its subject back from a final state: a lifecycle PENDING
 * for an action the journal knows as APPROVED or REVERSED, or an inquiry's creation (no
 * resolution) for one the journal knows as resolved. impact.com retried an older postback after
 * a newer one got through, or the inbox delivers a row that died before the newer one came.
 * Clearing postbacks are never stale: clearing comes after the final state by definition. A
 * PENDING that reconciliation read from impact.com's API is held to the same rule.
 */
export function isStale(event: PostbackEvent, previous: JournalRecord | null, ordering: Ordering): boolean {
  if (ordering === 'none' || previous === null) return false;
  switch (event.kind) {
    case 'action':
      return event.trigger !== 'clearing' && event.status === 'PENDING' && isFinal(previous['status']);
    case 'inquiry':
      return event.state === 'created' && previous['state'] === 'resolved';
    case 'catalog':
      return false;
  }
}

/**
 * True for a lifecycle postback that moves its action into a final state (APPROVED, REVERSED)
 * from one that is not. Such a move is never backwards, whatever the order the postbacks came
 * in: impact.com retries an older PENDING (answered 503 once) after the reversal it sent later,
 * so a final state's inbox row can be overtaken by an older state's, and must still be applied.
 */
export function reachesFinalState(event: PostbackEvent, previous: JournalRecord | null): boolean {
  if (event.kind !== 'action' || event.trigger === 'clearing') return false;
  return isFinal(event.status) && !isFinal(previous?.['status']);
}

/**
 * True when the action's state in the event (status, payout, amount, currency) is the one the
 * record holds. A field the event does not carry does not count as a difference, as the record
 * of a postback without it keeps the earlier value. Amounts are compared as decimals: `5.50`
 * and `5.5` are the same payout.
 */
export function sameActionState(event: ActionEvent, record: JournalRecord): boolean {
  return (
    sameText(event.status, record['status']) &&
    sameDecimal(event.payout, record['payout']) &&
    sameDecimal(event.amount, record['amount']) &&
    sameText(event.currency, record['currency'])
  );
}

/**
 * True for a lifecycle postback carrying the very state that reconciliation delivered for its
 * action: reconciliation read it from impact.com's API after the postback was lost or late, and
 * delivered it under its own key, so the postback's key is new but its effect is done. The
 * journal's state decides, not the key. A clearing postback is a new event (the action's money
 * cleared), not a state, and is always delivered.
 */
export function isAlreadyApplied(event: PostbackEvent, previous: JournalRecord | null): boolean {
  return (
    previous !== null &&
    event.kind === 'action' &&
    event.trigger === 'lifecycle' &&
    previous['trigger'] === 'reconciliation' &&
    sameActionState(event, previous)
  );
}

function sameText(value: string | undefined, recorded: unknown): boolean {
  return value === undefined || value === recorded;
}

// Decimal strings as the field specs accept them: an optional minus sign, digits, a fraction.
const DECIMAL = /^(-?)0*(\d*?)(?:\.(\d*?)0*)?$/;

function sameDecimal(value: string | undefined, recorded: unknown): boolean {
  if (value === undefined || value === recorded) return true;
  if (typeof recorded !== 'string') return false;
  return canonicalDecimal(value) === canonicalDecimal(recorded);
}

/** `-005.500` → `-5.5`, `0.0` → `0`; anything else as it is. */
function canonicalDecimal(text: string): string {
  const match = DECIMAL.exec(text);
  if (match === null) return text;
  const whole = match[2] === '' ? '0' : (match[2] as string);
  const fraction = match[3] ?? '';
  const digits = fraction === '' ? whole : `${whole}.${fraction}`;
  return digits === '0' ? '0' : `${match[1] as string}${digits}`;
}

/**
 * The record the journal keeps once the event is delivered. A field the postback does not carry
 * keeps its earlier value (a template without {Status} must not erase a known final status).
 */
export function recordOf(event: PostbackEvent, previous: JournalRecord | null): JournalRecord | null {
  switch (event.kind) {
    case 'action':
      return actionRecord(event, previous);
    case 'inquiry':
      return inquiryRecord(event, previous);
    case 'catalog':
      return null;
  }
}

function actionRecord(event: ActionEvent, previous: JournalRecord | null): JournalRecord {
  return {
    status: event.status ?? text(previous?.['status']),
    payout: event.payout ?? text(previous?.['payout']),
    amount: event.amount ?? text(previous?.['amount']),
    currency: event.currency ?? text(previous?.['currency']),
    trigger: event.trigger,
    key: event.meta.key,
    receivedAt: isoText(event.meta.receivedAt),
  };
}

function inquiryRecord(event: InquiryEvent, previous: JournalRecord | null): JournalRecord {
  return {
    state: event.state,
    resolutionStatus: event.resolutionStatus ?? text(previous?.['resolutionStatus']),
    expectedPayout: event.expectedPayout ?? text(previous?.['expectedPayout']),
    finalPayout: event.finalPayout ?? text(previous?.['finalPayout']),
    currency: event.currency ?? text(previous?.['currency']),
    key: event.meta.key,
    receivedAt: isoText(event.meta.receivedAt),
  };
}

/**
 * The key a listener makes its write idempotent on (`ctx.idempotencyKey`): the same for one
 * change of an action or inquiry however it comes (impact.com's retry, the inbox, a delivery
 * again after a crash, reconciliation finding it), and different for every other change. A
 * change is the record it moves from (by that record's key: the event that wrote it) and the
 * state it moves to (an action's status and payout, the payout as a decimal), so the same state
 * reached again later is a new change. A move into a final state is the one exception: an action
 * is approved or reversed once, so that move is named by the final status alone, whatever it
 * moves from (an older PENDING may be applied between two deliveries of it). A clearing is a
 * change of its own kind. Catalog postbacks have no state: their dedupe key.
 */
export function idempotencyKeyOf(event: PostbackEvent, previous: JournalRecord | null): string {
  const record = recordOf(event, previous);
  const subject = subjectOf(event);
  if (record === null || subject === null) return event.meta.key;
  const from = text(previous?.['key']);
  // An action's state here is its status and payout, what a credit depends on: a template may
  // leave out Amount or Currency, which the Actions API always lists, and one change must get
  // one key whether its postback or reconciliation delivers it.
  const status = record['status'];
  const change =
    event.kind === 'action'
      ? event.trigger !== 'clearing' && isFinal(status)
        ? ['final', status]
        : [event.trigger === 'clearing' ? 'clearing' : 'state', from, status, decimalOf(record['payout'])]
      : [
          'inquiry',
          from,
          record['state'],
          record['resolutionStatus'],
          decimalOf(record['expectedPayout']),
          decimalOf(record['finalPayout']),
          record['currency'],
        ];
  return `${subject}:${hash('sha256', JSON.stringify(change), 'base64url')}`;
}

/**
 * True when the journal learned the record's state after `time`: its postback arrived later, or
 * reconciliation's request for it went out later.
 */
export function learnedAfter(record: JournalRecord | null, time: Date): boolean {
  if (typeof record?.['receivedAt'] !== 'string') return false;
  return Date.parse(record['receivedAt']) > time.getTime();
}

/**
 * True when the record was written by reconciliation from impact.com's state read after
 * `receivedAt`: a postback that arrived before that (an inbox row that died or waited, and is
 * delivered only now) carries an older state, and must not move the action back.
 */
export function readByReconciliationSince(record: JournalRecord | null, receivedAt: Date): boolean {
  return record?.['trigger'] === 'reconciliation' && learnedAfter(record, receivedAt);
}

function decimalOf(value: string | null | undefined): string | null {
  return typeof value === 'string' ? canonicalDecimal(value) : null;
}

/**
 * The state listeners see as `ctx.previous`, read from a stored record. A durable store's record
 * was written by some version of this package or edited by hand, so every field is checked: one
 * that does not fit reads as null (a date as the epoch) rather than failing the delivery.
 */
export function stateOf(event: PostbackEvent, record: JournalRecord | null): ActionState | InquiryState | null {
  if (record === null) return null;
  switch (event.kind) {
    case 'action':
      return actionStateOf(record);
    case 'inquiry':
      return Object.freeze({
        state: record['state'] === 'resolved' ? 'resolved' : 'created',
        resolutionStatus: text(record['resolutionStatus']),
        expectedPayout: text(record['expectedPayout']),
        finalPayout: text(record['finalPayout']),
        currency: text(record['currency']),
        key: text(record['key']) ?? '',
        receivedAt: dateOf(record['receivedAt']),
      } satisfies InquiryState);
    case 'catalog':
      return null;
  }
}

/** An action's state read from its stored record (checked as stateOf checks it); null for none. */
export function actionStateOf(record: JournalRecord | null): ActionState | null {
  if (record === null) return null;
  return Object.freeze({
    status: text(record['status']),
    payout: text(record['payout']),
    amount: text(record['amount']),
    currency: text(record['currency']),
    trigger: triggerOf(record['trigger']),
    key: text(record['key']) ?? '',
    receivedAt: dateOf(record['receivedAt']),
  } satisfies ActionState);
}

function triggerOf(value: unknown): ActionEvent['trigger'] {
  return value === 'clearing' || value === 'reconciliation' ? value : 'lifecycle';
}

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function dateOf(value: unknown): Date {
  const date = new Date(typeof value === 'string' ? value : 0);
  return Number.isNaN(date.getTime()) ? new Date(0) : date;
}
