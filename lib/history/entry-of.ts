import type { FieldRecord } from '../body/field-record';
import type { PostbackErrorCode } from '../errors';
import type { PostbackEvent, PostbackFormat, PostbackRoute } from '../events';
import type { FieldIndex } from '../fields/field-names';
import { subjectOf } from '../journal/journal';
import type { HistoryOutcome, NewHistoryEntry } from './history-entry';

/** What the receiver knows of a postback once it has answered it. */
export interface AnsweredPostback {
  readonly receivedAt: Date;
  readonly route: PostbackRoute;
  readonly format: PostbackFormat | null;
  readonly ip: string | null;
  readonly path: string;
  readonly status: number;
  readonly code: PostbackErrorCode | null;
  readonly outcome: HistoryOutcome;
  readonly durationMs: number;
  /** The event, once the fields made one. */
  readonly event: PostbackEvent | null;
  /** The fields as received, once they were read (the token removed). */
  readonly received: FieldRecord | null;
  /** The route's field names: a refused postback's action id and subId1 are read by them. */
  readonly fieldIndex: FieldIndex;
}

/** The history entry of a postback answered over HTTP. */
export function postbackEntry(answered: AnsweredPostback): NewHistoryEntry {
  const { event, received, fieldIndex } = answered;
  return {
    trigger: 'postback',
    receivedAt: answered.receivedAt,
    route: answered.route,
    format: answered.format,
    ip: answered.ip,
    path: answered.path,
    outcome: answered.outcome,
    status: answered.status,
    code: answered.code,
    durationMs: answered.durationMs,
    key: event?.meta.key ?? null,
    subject: event === null ? null : subjectOf(event),
    // A postback refused for its fields still belongs on its action's timeline.
    actionId: event === null ? receivedText(received, fieldIndex, 'actionId') : actionIdOf(event),
    subId1: event === null ? receivedText(received, fieldIndex, 'subId1') : textOf(event.fields['subId1']),
    fields: received,
  };
}

/** The history entry of a delivery that answers nobody: an inbox row's, or a reconciled action's. */
export function deliveryEntry(
  trigger: 'inbox' | 'reconciliation',
  event: PostbackEvent,
  outcome: HistoryOutcome,
  code: PostbackErrorCode | null,
  durationMs: number,
): NewHistoryEntry {
  const { meta } = event;
  return {
    trigger,
    receivedAt: meta.receivedAt,
    route: meta.route,
    format: meta.format,
    // A reconciled action has no sender's address.
    ip: meta.ip === '' ? null : meta.ip,
    path: meta.path,
    outcome,
    status: null,
    code,
    durationMs,
    key: meta.key,
    subject: subjectOf(event),
    actionId: actionIdOf(event),
    subId1: textOf(event.fields['subId1']),
    fields: event.raw,
  };
}

function actionIdOf(event: PostbackEvent): string | null {
  return event.kind === 'action' ? event.actionId : textOf(event.fields['actionId']);
}

function textOf(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

/** A known field's text among fields as received, whatever key the sender gave it. */
function receivedText(received: FieldRecord | null, fieldIndex: FieldIndex, name: string): string | null {
  if (received === null) return null;
  for (const key in received) {
    if (fieldIndex.resolve(key).name === name) return textOf(received[key]);
  }
  return null;
}
