import type { EventEmitter } from 'node:events';
import { createBodyReader, fromBodyParserError, type BodyReader, type ReceivedBody } from '../body/read-body';
import { addField, type FieldRecord, type FieldValue } from '../body/field-record';
import { parseUrlEncoded, withoutQueryField } from '../body/parse-urlencoded';
import { dedupeKey } from '../dedupe/dedupe-key';
import { callListeners, withTimeout } from '../delivery/call-listeners';
import { ignore, type DeliveryOutcome } from '../delivery/apply-claim';
import { ClaimUnits } from '../delivery/claim-unit';
import { createDirectDelivery } from '../delivery/direct';
import { createInboxDelivery, type DeliveryObserver, type InboxDelivery, type PostbackInbox } from '../delivery/inbox';
import { listenerFailure } from '../delivery/listener-failure';
import { PostbackError, routerClosed, type PostbackErrorCode } from '../errors';
import type { HandledRequest, PostbackEvent, PostbackFormat, PostbackRoute } from '../events';
import { buildEvent } from '../fields/build-event';
import { compileFieldIndex, type FieldIndex } from '../fields/field-names';
import { ACTION_FIELDS, CATALOG_FIELDS, INQUIRY_FIELDS } from '../fields/field-specs';
import { normalizeFields } from '../fields/normalize-fields';
import { rebuildEvent } from '../fields/stored-event';
import {
  reconcileActions,
  type ReconcileOptions,
  type ReconcileReport,
  type ReconciliationRun,
} from '../reconcile/reconcile';
import { resolveClientIp } from '../ip/client-ip';
import { compileAllowList } from '../ip/allow-list';
import { validateRangeList } from '../ip/ip-ranges';
import type { NormalizedOptions } from '../options';
import { compileTokenCheck, TOKEN_HEADER, TOKEN_QUERY_PARAM } from '../token';
import { deliveryEntry, postbackEntry } from '../history/entry-of';
import { entryForLog, type SentText } from '../history/sent-text';
import type { HistoryLog, HistoryOutcome, NewHistoryEntry } from '../history/history-entry';
import type { CommitOutcome } from '../stores/store';
import { createHistoryRecorder, type PostbackHistory } from '../history/history';
import { MemoryHistory } from '../history/memory-history';
import { loadOtelApi } from '../telemetry/otel-api';
import { Telemetry, type Traced } from '../telemetry/telemetry';
import { createSuccessAnswers, errorAnswer, type Answer } from './answer';
import type { IncomingPostback } from './incoming';
import { ROUTE_EVENTS } from './routes';

/**
 * The receiver without a host: it takes a request as any host can describe it and returns the
 * answer, with the events, stores, journal and delivery behind it. Adapters (lib/adapters/)
 * turn a host's request into an IncomingPostback and write the Answer back.
 */
export interface Receiver {
  /** Turns bodies into fields within the limits; adapters read bytes and hand them to it. */
  readonly bodyReader: BodyReader;
  /**
   * Handles one postback and gives its answer. A GET whose store and listeners answer
   * synchronously (the default store) is answered before this returns, and no promise is
   * made; it returns a promise only while it waits for a body or for the delivery. Never throws
   * and never rejects: every outcome is an answer.
   */
  readonly receive: (route: PostbackRoute, request: IncomingPostback) => Answer | Promise<Answer>;
  /**
   * The answer for a host parser's failure on a postback route (express.json() before the
   * router), as the receiver answers its own parser's: its format, its codes, a `rejected` event.
   */
  readonly refuseParserError: (route: PostbackRoute, request: IncomingPostback, caught: unknown) => Answer;
  /** Reports that an answer could not be written (the host's response threw). */
  readonly answerNotWritten: (error: unknown) => void;
  readonly inbox: PostbackInbox | null;
  /** Null with `history: false`. */
  readonly history: PostbackHistory | null;
  readonly close: (options?: { readonly timeoutMs?: number }) => Promise<void>;
  readonly reconcile: (options: ReconcileOptions) => Promise<ReconcileReport>;
  /** The last reconciliation that ended, or null. */
  readonly lastReconciliation: () => ReconciliationRun | null;
  readonly setAllowedIps: (allowedIps: readonly string[]) => void;
}

export function createReceiver(emitter: EventEmitter, settings: NormalizedOptions): Receiver {
  /** The allow-list in force; setAllowedIps() swaps it. */
  let isAllowedIp = settings.isAllowedIp;
  const fieldIndexes: Readonly<Record<PostbackRoute, FieldIndex>> = {
    actions: compileFieldIndex(ACTION_FIELDS, settings.hostFieldKeys),
    clearing: compileFieldIndex(ACTION_FIELDS, settings.hostFieldKeys),
    inquiries: compileFieldIndex(INQUIRY_FIELDS, settings.hostFieldKeys),
    catalog: compileFieldIndex(CATALOG_FIELDS, settings.hostFieldKeys),
  };
  const bodyReader = createBodyReader({ limit: settings.limit, maxFields: settings.maxFields });
  const checkToken = settings.tokens.length > 0 ? compileTokenCheck(settings.tokens) : null;
  const successAnswer = createSuccessAnswers(settings.successResponse);

  /** Emits `error` only to listeners the host registered: with none, Node would throw. */
  function reportError(error: PostbackError): void {
    if (emitter.listenerCount('error') === 0) return;
    void callListeners(emitter, 'error', [error]);
  }

  /** Emits a notification (`rejected`, `duplicate`, `dead`, `handled`) without letting a listener's failure escape. */
  function notify(eventName: 'rejected' | 'duplicate' | 'dead' | 'handled', ...args: readonly unknown[]): void {
    if (emitter.listenerCount(eventName) === 0) return;
    void callListeners(emitter, eventName, args).then((failures) => {
      for (const failure of failures) {
        reportError(listenerFailure(eventName, failure, settings.tokens));
      }
    });
  }

  const historyLog: HistoryLog = settings.store.history ?? new MemoryHistory();
  const recorder =
    settings.history === null
      ? null
      : createHistoryRecorder(
          historyLog,
          settings.history,
          settings.store.readJournal?.bind(settings.store) ?? null,
          reportError,
        );
  /**
   * The postbacks being answered, by event, when their entries may be written with their
   * commits: a log that says whether (`writtenWithCommits`) is asked at each commit.
   */
  const answering =
    recorder !== null && historyLog.writtenWithCommits !== undefined ? new WeakMap<PostbackEvent, CommitNote>() : null;

  /**
   * The entry the commit of a postback being answered writes with it, as its answer will be
   * (undefined for any other delivery: the inbox's, reconciliation's).
   */
  function committedEntry(event: PostbackEvent, outcome: CommitOutcome | 'stored'): NewHistoryEntry | undefined {
    const note = answering?.get(event);
    if (note === undefined || historyLog.writtenWithCommits !== true) return undefined;
    note.committedOutcome = outcome;
    // The status does not depend on the flavour the request asks for.
    return entryForLog(historyLog, historyEntryOf(note, successAnswer({}, outcome).status, null, outcome));
  }

  const otelApi = settings.telemetry ? loadOtelApi() : null;
  const telemetry = otelApi === null ? null : new Telemetry(otelApi, reportError);

  /**
   * Records a delivery that answers nobody (an inbox row's, a reconciled action's) in history,
   * and ends its span.
   */
  function recordDelivery(
    trigger: 'inbox' | 'reconciliation',
    event: PostbackEvent,
    outcome: DeliveryOutcome,
    started: number,
    traced: Traced | null,
  ): void {
    if (recorder === null && telemetry === null) return;
    const durationMs = performance.now() - started;
    const code = outcome.kind === 'failed' ? outcome.error.code : null;
    const recorded = outcome.kind === 'overtaken' ? 'duplicate' : outcome.kind;
    telemetry?.endDelivery(traced, {
      outcome: recorded,
      status: null,
      code,
      format: event.meta.format,
      event,
      durationMs,
    });
    recorder?.record(recorded, () => deliveryEntry(trigger, event, recorded, code, durationMs));
  }

  /** What the inbox worker tells of each delivery, when history or telemetry wants it. */
  const inboxObserver: DeliveryObserver | null =
    recorder === null && telemetry === null
      ? null
      : (event) => {
          const started = performance.now();
          const traced = telemetry?.startInboxDelivery(event) ?? null;
          return {
            run: (work) => (telemetry === null ? work() : telemetry.within(traced, work)),
            end: (outcome) => {
              if (outcome === null) {
                telemetry?.endDelivery(traced, 'threw');
                return;
              }
              // A delivery given back as the router closes is no delivery: it is made again later.
              if (outcome.kind === 'failed' && outcome.error.code === 'router.closed') {
                telemetry?.endDelivery(traced, 'given-back');
                return;
              }
              recordDelivery('inbox', event, outcome, started, traced);
            },
          };
        };

  /** Claims being worked on asynchronously, which close() waits for and, past its timeout, gives up. */
  const units = new ClaimUnits();
  /** Aborted by close(): a reconciliation under way stops, and no delivery begins. */
  const stopping = new AbortController();
  const startInbox = (): InboxDelivery | null =>
    settings.delivery.mode === 'inbox'
      ? createInboxDelivery(
          emitter,
          settings.delivery.inbox,
          { ...settings, ...settings.delivery, committedEntry },
          reportError,
          units,
          (eventName, args) => {
            notify(eventName, ...args);
          },
          (row) => rebuildEvent(row, fieldIndexes),
          (event) => ROUTE_EVENTS[event.meta.route],
          inboxObserver,
        )
      : null;
  // Its worker serves no request: no span active where the router is created is its parent.
  const inboxDelivery = telemetry === null ? startInbox() : telemetry.outsideAnySpan(startInbox);
  const directDelivery = createDirectDelivery(
    emitter,
    settings.store,
    { ...settings, committedEntry },
    reportError,
    units,
    stopping.signal,
  );
  const deliver =
    inboxDelivery === null ? directDelivery : (_eventName: string, event: PostbackEvent) => inboxDelivery.arrive(event);
  /** Requests being handled now, so that close() can wait for them. */
  const handling = new Set<Promise<unknown>>();
  let closing: Promise<void> | null = null;

  function track(pending: Promise<unknown>): void {
    const settled = pending.then(ignore, ignore);
    handling.add(settled);
    void settled.finally(() => handling.delete(settled));
  }

  /**
   * Takes the secret out of the fields (it must never reach `raw` or a log) and checks it; says
   * whether the query held one.
   */
  function checkSecret(query: FieldRecord, request: IncomingPostback): boolean {
    if (checkToken === null) return false;
    const presented: string[] = [];
    const fromQuery = query[TOKEN_QUERY_PARAM];
    Reflect.deleteProperty(query, TOKEN_QUERY_PARAM);
    if (typeof fromQuery === 'string') presented.push(fromQuery);
    const fromHeader = request.headers[TOKEN_HEADER];
    if (typeof fromHeader === 'string') presented.push(fromHeader);
    const verdict = checkToken(presented);
    if (verdict === 'missing') throw new PostbackError('token.missing', 'a postback token is required');
    if (verdict === 'invalid') throw new PostbackError('token.invalid', 'the postback token is not valid');
    return fromQuery !== undefined;
  }

  /** Fixed query parameters of a POST URL join the body's fields (most POST URLs have none). */
  function withQueryFields(query: FieldRecord, bodyFields: FieldRecord): FieldRecord {
    let empty = true;
    for (const _ in query) {
      empty = false;
      break;
    }
    if (empty) return bodyFields;
    for (const key in bodyFields) addField(query, key, bodyFields[key] as FieldValue);
    return query;
  }

  /** What the request sent as text, the token taken out; null when a host parser made an object of the body. */
  function sentTextOf(handlingOf: Handling, body: ReceivedBody | null): SentText | null {
    if (body !== null && body.text === null) return null;
    const { query } = handlingOf.request;
    return {
      query: handlingOf.tokenInQuery ? withoutQueryField(query, TOKEN_QUERY_PARAM) : query,
      body: body?.text ?? null,
    };
  }

  function clientIp(request: IncomingPostback): string | null {
    return resolveClientIp(request.remoteAddress, request.headers['x-forwarded-for'], settings.proxyTrust);
  }

  /** The refusal of a sender the allow-list does not hold, or whose address is unknown. */
  function forbidden(): PostbackError {
    return new PostbackError('ip.forbidden', 'this address may not send postbacks');
  }

  /**
   * What the `rejected` event says: the error's message, and for a host that gave no address
   * (a Fetch host) what it must pass. Only the host hears that: the sender learns nothing of the setup.
   */
  function rejectionMessage(handlingOf: Handling, error: PostbackError): string {
    if (error.code !== 'ip.forbidden' || handlingOf.request.remoteAddress !== undefined || handlingOf.ip !== null) {
      return error.message;
    }
    return `${error.message}: the client address is unknown; pass it (fetchHandler's info.clientAddress) or, behind a proxy that sets X-Forwarded-For, set trustProxy`;
  }

  /**
   * Records an answered request in history, and emits one `handled` event for it (for metrics;
   * built only when someone listens).
   */
  function reportHandled(
    handlingOf: Handling,
    status: number,
    code: PostbackErrorCode | null,
    outcome: HandledRequest['outcome'],
  ): void {
    const { started, route, format, ip } = handlingOf;
    if (started < 0) {
      telemetry?.endUnmeasured(handlingOf.traced);
      return;
    }
    const durationMs = performance.now() - started;
    telemetry?.endPostback(handlingOf.traced, route, {
      outcome,
      status,
      code,
      format,
      event: handlingOf.event,
      durationMs,
    });
    // Written with the commit already, unless it failed, or wrote nothing (an inbox's duplicate).
    if (handlingOf.commitNote?.committedOutcome !== outcome) {
      recorder?.record(outcome, () => historyEntryOf(handlingOf, status, code, outcome, durationMs));
    }
    notify('handled', { route, format, status, code, outcome, durationMs, ip } satisfies HandledRequest);
  }

  function historyEntryOf(
    handlingOf: EntrySource,
    status: number,
    code: PostbackErrorCode | null,
    outcome: HistoryOutcome,
    durationMs = performance.now() - handlingOf.started,
  ): NewHistoryEntry {
    const { route } = handlingOf;
    return postbackEntry({
      receivedAt: handlingOf.receivedAt,
      route,
      format: handlingOf.format,
      ip: handlingOf.ip,
      path: handlingOf.path,
      status,
      code,
      outcome,
      durationMs,
      event: handlingOf.event,
      received: handlingOf.received,
      sent: handlingOf.sent,
      fieldIndex: fieldIndexes[route],
    });
  }

  /**
   * Answers a refusal (4xx, with a `rejected` event) or a failure (5xx, with an `error` event),
   * and reports it as handled.
   */
  function refuse(handlingOf: Handling, error: PostbackError): Answer {
    const { request, ip, bodyRead } = handlingOf;
    if (error.status >= 500) reportError(error);
    else
      notify('rejected', {
        code: error.code,
        status: error.status,
        message: rejectionMessage(handlingOf, error),
        ip,
        method: request.method,
        path: request.path,
      });
    const answer = errorAnswer(request.headers, error, !bodyRead);
    reportHandled(handlingOf, error.status, error.code, error.status >= 500 ? 'failed' : 'rejected');
    return answer;
  }

  /** What a postback's history entry is made of. */
  interface EntrySource {
    readonly route: PostbackRoute;
    readonly receivedAt: Date;
    readonly started: number;
    readonly path: string;
    readonly ip: string | null;
    readonly format: PostbackFormat | null;
    /** The fields as received, once read; for history. */
    readonly received: FieldRecord | null;
    /** The same fields as the request sent them, when it sent text; for history. */
    readonly sent: SentText | null;
    readonly event: PostbackEvent | null;
  }

  /**
   * What a commit needs to write a postback's entry: the request's parts it is made of, and
   * nothing that holds the request itself (a host may keep events long after their answer).
   */
  interface CommitNote extends EntrySource {
    /** The outcome of the entry a commit was given, or null. */
    committedOutcome: HistoryOutcome | null;
  }

  /** A request being handled, and what is known of it for its answer and its `handled` report. */
  interface Handling extends EntrySource {
    readonly request: IncomingPostback;
    ip: string | null;
    format: PostbackFormat | null;
    bodyRead: boolean;
    received: FieldRecord | null;
    sent: SentText | null;
    /** Whether the query string held the token, which history must not keep. */
    tokenInQuery: boolean;
    /** What a commit of its event writes its entry from (see committedEntry), when it may. */
    commitNote: CommitNote | null;
    /** The event, once built; for history. */
    event: PostbackEvent | null;
    /** Its span, with telemetry on. */
    readonly traced: Traced | null;
  }

  function startHandling(route: PostbackRoute, request: IncomingPostback): Handling {
    const traced = telemetry?.startPostback(route) ?? null;
    // Nothing is measured for nobody: without history, an SDK and a `handled` listener, no clock is read.
    const measured =
      recorder !== null || emitter.listenerCount('handled') > 0 || (telemetry?.measures(traced) ?? false);
    return {
      request,
      route,
      path: request.path,
      receivedAt: new Date(),
      started: measured ? performance.now() : -1,
      ip: null,
      format: null,
      bodyRead: false,
      received: null,
      sent: null,
      tokenInQuery: false,
      commitNote: null,
      event: null,
      traced,
    };
  }

  function receive(route: PostbackRoute, request: IncomingPostback): Answer | Promise<Answer> {
    const handlingOf = startHandling(route, request);
    // Inside the postback's span: listeners, and the host's spans they make, nest under it.
    if (telemetry === null) return receiveHandling(handlingOf);
    return telemetry.within(handlingOf.traced, () => receiveHandling(handlingOf));
  }

  function receiveHandling(handlingOf: Handling): Answer | Promise<Answer> {
    const { request } = handlingOf;
    try {
      if (closing !== null) throw routerClosed();
      const ip = clientIp(request);
      handlingOf.ip = ip;
      // Checked before anything else is read: a refused sender costs no parsing.
      if (ip === null || !isAllowedIp(ip)) throw forbidden();
      // Hosts answer HEAD through GET routes; a HEAD must never credit anything.
      const { method } = request;
      if (method !== 'GET' && method !== 'POST') {
        throw new PostbackError('method.not_allowed', `method ${method} is not allowed; use GET or POST`);
      }
      const query = parseUrlEncoded(request.query, settings.maxFields);
      handlingOf.tokenInQuery = checkSecret(query, request);
      if (method === 'GET') return handleFields(handlingOf, ip, query, null);
      const answered = request.readBody().then(
        (body) => handleFields(handlingOf, ip, query, body),
        (caught: unknown) => refuseCaught(handlingOf, caught),
      );
      track(answered);
      return answered;
    } catch (caught) {
      return refuseCaught(handlingOf, caught);
    }
  }

  /** Turns the fields received (the query's, and the body's if any) into an event, delivers it and answers by the outcome. */
  function handleFields(
    handlingOf: Handling,
    ip: string,
    query: FieldRecord,
    body: ReceivedBody | null,
  ): Answer | Promise<Answer> {
    handlingOf.bodyRead = true;
    const { route } = handlingOf;
    try {
      const received = body === null ? query : withQueryFields(query, body.record);
      const format = body?.format ?? 'query';
      handlingOf.format = format;
      handlingOf.received = received;
      // Only for history, which keeps text: built without a copy (the request's own strings).
      if (recorder !== null) handlingOf.sent = sentTextOf(handlingOf, body);
      const normalized = normalizeFields(received, fieldIndexes[route]);
      const meta = {
        receivedAt: handlingOf.receivedAt,
        ip,
        format,
        route,
        path: handlingOf.request.path,
        key: dedupeKey(route, normalized.canonical),
      } as const;
      const event = buildEvent(route, normalized, received, meta);
      handlingOf.event = event;
      if (answering !== null) {
        const { receivedAt, started, path, sent } = handlingOf;
        // `received` is the event's own `raw`: kept as long as the event is, whatever the note does.
        const note: CommitNote = {
          route,
          receivedAt,
          started,
          path,
          ip,
          format,
          received,
          sent,
          event,
          committedOutcome: null,
        };
        handlingOf.commitNote = note;
        answering.set(event, note);
      }
      // Before it is stored: a worker may take the row before its arrival is answered.
      if (inboxDelivery !== null) telemetry?.rememberArrival(meta.key, handlingOf.traced);
      const delivered = deliver(ROUTE_EVENTS[route], event);
      if (!(delivered instanceof Promise)) return answer(handlingOf, event, delivered);
      const answered = delivered.then(
        (outcome) => answer(handlingOf, event, outcome),
        (caught: unknown) => refuseCaught(handlingOf, caught),
      );
      track(answered);
      return answered;
    } catch (caught) {
      return refuseCaught(handlingOf, caught);
    }
  }

  function answer(handlingOf: Handling, event: PostbackEvent, outcome: DeliveryOutcome): Answer {
    if (outcome.kind === 'failed') {
      reportHandled(handlingOf, outcome.error.status, outcome.error.code, 'failed');
      return errorAnswer(handlingOf.request.headers, outcome.error, false);
    }
    // Only reconciliation, which answers nobody, is overtaken: a postback is a duplicate then.
    const kind = outcome.kind === 'overtaken' ? 'duplicate' : outcome.kind;
    if (kind === 'duplicate') notify('duplicate', event);
    // With the inbox, a 2xx means stored: the worker delivers it afterwards.
    const answered = inboxDelivery !== null && kind === 'delivered' ? 'stored' : kind;
    const success = successAnswer(handlingOf.request.headers, answered);
    reportHandled(handlingOf, success.status, null, answered);
    return success;
  }

  /** Refuses the request for what was thrown: a PostbackError as it is, anything else as `internal`. */
  function refuseCaught(handlingOf: Handling, caught: unknown): Answer {
    const error =
      caught instanceof PostbackError
        ? caught
        : new PostbackError('internal', 'the postback could not be processed', { cause: caught });
    return refuse(handlingOf, error);
  }

  function refuseParserError(route: PostbackRoute, request: IncomingPostback, caught: unknown): Answer {
    const handlingOf = startHandling(route, request);
    handlingOf.bodyRead = true;
    const ip = clientIp(request);
    handlingOf.ip = ip;
    // The allow-list first, as on the receiver's own path: a refused sender learns nothing of its body.
    const error = ip === null || !isAllowedIp(ip) ? forbidden() : fromBodyParserError(caught);
    return refuse(handlingOf, error);
  }

  function answerNotWritten(error: unknown): void {
    reportError(new PostbackError('internal', 'the answer could not be written', { cause: error }));
  }

  function setAllowedIps(allowedIps: readonly string[]): void {
    // Compiled whole before the swap: a list that fails its check changes nothing.
    isAllowedIp = compileAllowList(validateRangeList('allowedIps', allowedIps));
  }

  let lastRun: ReconciliationRun | null = null;

  // Reconciled actions go the direct way in both delivery modes: the store's claim keeps them
  // apart from postbacks of the same action, and the report can say what was delivered.
  async function reconcile(reconcileOptions: ReconcileOptions): Promise<ReconcileReport> {
    const { store } = settings;
    if (store.readJournal === undefined) {
      throw new TypeError('reconcile() needs a store whose journal can be read (readJournal); option store has none');
    }
    if (closing !== null) throw new PostbackError('router.closed', 'this receiver is shutting down');
    const readJournal = store.readJournal.bind(store);
    const traced = telemetry?.startReconcile() ?? null;
    const run = (): Promise<ReconcileReport> =>
      reconcileActions(reconcileOptions, {
        readJournal,
        ordering: settings.ordering,
        deliver: async (event, readKey) => {
          const started = recorder === null && telemetry === null ? 0 : performance.now();
          const outcome = await directDelivery('action', event, readKey);
          recordDelivery('reconciliation', event, outcome, started, null);
          return outcome;
        },
        stopped: stopping.signal,
      });
    // Inside the run's span: the deliveries' listeners nest under it.
    const reconciling = telemetry === null ? run() : telemetry.within(traced, run);
    track(reconciling);
    const { since } = reconcileOptions;
    const until = reconcileOptions.until ?? new Date();
    void reconciling.then(
      (report) => {
        lastRun = { at: new Date(), since, until, report, error: null };
        telemetry?.endReconcile(traced, report, null);
      },
      (error: unknown) => {
        lastRun = {
          at: new Date(),
          since,
          until,
          report: null,
          error: error instanceof Error ? error.message : String(error),
        };
        telemetry?.endReconcile(traced, null, error);
      },
    );
    return reconciling;
  }

  function close(closeOptions: { readonly timeoutMs?: number } = {}): Promise<void> {
    closing ??= (async () => {
      stopping.abort();
      recorder?.close();
      const timeoutMs = closeOptions.timeoutMs ?? settings.listenerTimeout;
      const deadline = Date.now() + timeoutMs;
      const inboxStopped = inboxDelivery?.stop(timeoutMs);
      await withTimeout(Promise.all([...handling]), timeoutMs, undefined);
      // Claims still worked on after their answer (listeners past the timeout, a commit tried
      // again) end before the store closes; those that do not by the deadline are given up.
      await units.drain(deadline - Date.now());
      await inboxStopped;
      await withTimeout(
        Promise.resolve(settings.store.close?.()),
        Math.max(0, deadline - Date.now()) + 1000,
        undefined,
      );
    })();
    return closing;
  }

  return {
    bodyReader,
    receive,
    refuseParserError,
    answerNotWritten,
    inbox: inboxDelivery?.admin ?? null,
    history: recorder?.history ?? null,
    close,
    reconcile,
    lastReconciliation: () => lastRun,
    setAllowedIps,
  };
}
