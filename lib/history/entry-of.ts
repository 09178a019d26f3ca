import type { FieldRecord } from '../body/field-record';
import type { PostbackErrorCode } from '../errors';
import type { PostbackEvent, PostbackFormat, PostbackRoute } from '../events';
import type { FieldIndex } from '../fields/field-names';
import { subjectOf } from '../journal/journal';
import type { HistoryOutcome, NewHistoryEntry } from './history-entry';
import { fieldsOfSent, type SentText } from './sent-text';

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
  /** The same fields as the request sent them, when it sent them as text. */
  readonly sent: SentText | null;
  /** The route's field names: a refused postback's action id and subId1 are read by them. */
  readonly fieldIndex: FieldIndex;
}

/** The history entry of a postback answered over HTTP. */
export function postbackEntry(answered: AnsweredPostback): NewHistoryEntry {
  return new PostbackEntry(answered);
}

/**
 * An answered postback's entry. It keeps the text the request sent rather than the parsed
 * fields where it can (see SentText): a log in memory keeps the entry itself, and the fields are
 * parsed again only when someone reads them.
 */
class PostbackEntry implements NewHistoryEntry {
  readonly trigger = 'postback';
  readonly receivedAt: Date;
  readonly route: PostbackRoute;
  readonly format: PostbackFormat | null;
  readonly ip: string | null;
  readonly path: string;
  readonly outcome: HistoryOutcome;
  readonly status: number;
  readonly code: PostbackErrorCode | null;
  readonly durationMs: number;
  readonly key: string | null;
  readonly subject: string | null;
  readonly actionId: string | null;
  readonly subId1: string | null;
  readonly sent?: SentText;
  /** The fields, when the request did not send them as text (a host parser read the body). */
  readonly #received: FieldRecord | null;

  constructor(answered: AnsweredPostback) {
    const { event, received, fieldIndex, sent } = answered;
    this.receivedAt = answered.receivedAt;
    this.route = answered.route;
    this.format = answered.format;
    this.ip = answered.ip;
    this.path = answered.path;
    this.outcome = answered.outcome;
    this.status = answered.status;
    this.code = answered.code;
    this.durationMs = answered.durationMs;
    this.key = event?.meta.key ?? null;
    this.subject = event === null ? null : subjectOf(event);
    // A postback refused for its fields still belongs on its action's timeline.
    this.actionId = event === null ? receivedText(received, fieldIndex, 'actionId') : actionIdOf(event);
    this.subId1 = event === null ? receivedText(received, fieldIndex, 'subId1') : textOf(event.fields['subId1']);
    if (sent !== null && received !== null) this.sent = sent;
    this.#received = sent === null ? received : null;
  }

  get fields(): FieldRecord | null {
    return this.sent === undefined ? this.#received : fieldsOfSent(this.format, this.sent);
  }
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
