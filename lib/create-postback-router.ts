import { EventEmitter } from 'node:events';
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { createBodyReader, fromBodyParserError, type ReceivedBody } from './body/read-body';
import { addField, type FieldRecord, type FieldValue } from './body/field-record';
import { parseUrlEncoded, queryStringOf } from './body/parse-urlencoded';
import { dedupeKey } from './dedupe/dedupe-key';
import { callListeners, withTimeout } from './delivery/call-listeners';
import { ignore, type DeliveryOutcome } from './delivery/apply-claim';
import { ClaimUnits } from './delivery/claim-unit';
import { createDirectDelivery } from './delivery/direct';
import { createInboxDelivery, type PostbackInbox } from './delivery/inbox';
import { listenerFailure } from './delivery/listener-failure';
import { PostbackError, routerClosed, type PostbackErrorCode } from './errors';
import type {
  HandledRequest,
  PostbackEvent,
  PostbackEventMap,
  PostbackFormat,
  PostbackRoute,
  TypedEventEmitter,
} from './events';
import { buildEvent } from './fields/build-event';
import { compileFieldIndex, type FieldIndex } from './fields/field-names';
import { ACTION_FIELDS, CATALOG_FIELDS, INQUIRY_FIELDS } from './fields/field-specs';
import { normalizeFields } from './fields/normalize-fields';
import { rebuildEvent } from './fields/stored-event';
import { requestPath } from './http/request-path';
import { reconcileActions, type ReconcileOptions, type ReconcileReport } from './reconcile/reconcile';
import { sendError, sendSuccess } from './http/respond';
import { resolveClientIp } from './ip/client-ip';
import { compileAllowList } from './ip/allow-list';
import { validateRangeList } from './ip/ip-ranges';
import { normalizeOptions, type PostbackRouterOptions } from './options';
import { compileTokenCheck, TOKEN_HEADER, TOKEN_QUERY_PARAM } from './token';

/**
 * The object createPostbackRouter returns: a typed event emitter with an Express middleware.
 * `T` is what listeners get as `ctx.transaction`, set by the store.
 */
export interface PostbackRouter<T = undefined> extends TypedEventEmitter<PostbackEventMap<T>> {
  /**
   * Mount it where impact.com should send: `app.use('/impact', postbacks.router)`. It serves
   * /actions, /clearing, /inquiries and /catalog below that path and passes anything else on.
   */
  readonly router: RequestHandler;
  /**
   * For a body parser of the host's that runs before the router (`app.use(express.json())`):
   * when it fails on a postback route, this answers as the router would (its format, its
   * codes, a `rejected` event) instead of Express's HTML error page. Mount it right after the
   * router: `app.use('/impact', postbacks.router, postbacks.errorHandler)`. Errors on other
   * paths go on to the host's handlers.
   */
  readonly errorHandler: ErrorRequestHandler;
  /** With `delivery: 'inbox'`: the stored postbacks, to look into and retry; null otherwise. */
  readonly inbox: PostbackInbox | null;
  /**
   * Shuts down: new postbacks are answered 503 (`router.closed`, with `Connection: close`);
   * postbacks being handled, and with `delivery: 'inbox'` the rows being delivered, finish, up
   * to `timeoutMs` (default: the listener timeout); then the store is closed. Twice is harmless.
   */
  close(options?: { readonly timeoutMs?: number }): Promise<void>;
  /**
   * Reads the actions impact.com's Actions API lists as updated in the range, compares each
   * with the journal, and delivers the missing and changed ones as `action` events (trigger
   * `reconciliation`), as a postback is delivered. Rejects with a PostbackError
   * (`reconcile.http`, `reconcile.invalid`) when the API fails; what earlier pages delivered stays.
   */
  reconcile(options: ReconcileOptions): Promise<ReconcileReport>;
  /**
   * Replaces the allow-list without a restart (impact.com adds ranges now and then). The list is
   * checked as option `allowedIps` is: a mistake throws a TypeError and the old list stays. The
   * next request is checked against the new one; one being read keeps the answer it had.
   */
  setAllowedIps(allowedIps: readonly string[]): void;
}

/** impact.com gives each event kind its own URL, and nothing in a request says which kind it is. */
const ROUTE_EVENTS: Readonly<Record<PostbackRoute, 'action' | 'inquiry' | 'catalog'>> = {
  actions: 'action',
  clearing: 'action',
  inquiries: 'inquiry',
  catalog: 'catalog',
};

class PostbackReceiver extends EventEmitter {
  // Assigned right after construction: these need the emitter.
  router!: RequestHandler;
  errorHandler!: ErrorRequestHandler;
  inbox!: PostbackInbox | null;
  close!: (options?: { readonly timeoutMs?: number }) => Promise<void>;
  reconcile!: (options: ReconcileOptions) => Promise<ReconcileReport>;
  setAllowedIps!: (allowedIps: readonly string[]) => void;
}

/**
 * Creates the postback receiver. Options are checked here, once: a mistake throws a TypeError
 * naming the option. Nothing throws at request time; every outcome is an HTTP answer.
 */
export function createPostbackRouter<T = undefined>(options: PostbackRouterOptions<T>): PostbackRouter<T> {
  const settings = normalizeOptions(options);
  /** The allow-list in force; setAllowedIps() swaps it. */
  let isAllowedIp = settings.isAllowedIp;
  const emitter = new PostbackReceiver();
  const fieldIndexes: Readonly<Record<PostbackRoute, FieldIndex>> = {
    actions: compileFieldIndex(ACTION_FIELDS, settings.hostFieldKeys),
    clearing: compileFieldIndex(ACTION_FIELDS, settings.hostFieldKeys),
    inquiries: compileFieldIndex(INQUIRY_FIELDS, settings.hostFieldKeys),
    catalog: compileFieldIndex(CATALOG_FIELDS, settings.hostFieldKeys),
  };
  const readBody = createBodyReader({ limit: settings.limit, maxFields: settings.maxFields });
  const checkToken = settings.tokens.length > 0 ? compileTokenCheck(settings.tokens) : null;

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

  /** Claims being worked on asynchronously, which close() waits for and, past its timeout, gives up. */
  const units = new ClaimUnits();
  /** Aborted by close(): a reconciliation under way stops, and no delivery begins. */
  const stopping = new AbortController();
  const inboxDelivery =
    settings.delivery.mode === 'inbox'
      ? createInboxDelivery(
          emitter,
          settings.delivery.inbox,
          { ...settings, ...settings.delivery },
          reportError,
          units,
          (eventName, args) => {
            notify(eventName, ...args);
          },
          (row) => rebuildEvent(row, fieldIndexes),
          (event) => ROUTE_EVENTS[event.meta.route],
        )
      : null;
  const directDelivery = createDirectDelivery(emitter, settings.store, settings, reportError, units, stopping.signal);
  const deliver =
    inboxDelivery === null ? directDelivery : (_eventName: string, event: PostbackEvent) => inboxDelivery.arrive(event);
  /** Requests being handled now, so that close() can wait for them. */
  const handling = new Set<Promise<void>>();
  let closing: Promise<void> | null = null;

  /** Takes the secret out of the fields (it must never reach `raw` or a log) and checks it. */
  function checkSecret(query: FieldRecord, req: Request): void {
    if (checkToken === null) return;
    const presented: string[] = [];
    const fromQuery = query[TOKEN_QUERY_PARAM];
    Reflect.deleteProperty(query, TOKEN_QUERY_PARAM);
    if (typeof fromQuery === 'string') presented.push(fromQuery);
    const fromHeader = req.headers[TOKEN_HEADER];
    if (typeof fromHeader === 'string') presented.push(fromHeader);
    const verdict = checkToken(presented);
    if (verdict === 'missing') throw new PostbackError('token.missing', 'a postback token is required');
    if (verdict === 'invalid') throw new PostbackError('token.invalid', 'the postback token is not valid');
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

  /** One `handled` event per answered request, for metrics; built only when someone listens. */
  function reportHandled(
    started: number,
    route: PostbackRoute,
    format: PostbackFormat | null,
    ip: string | null,
    status: number,
    code: PostbackErrorCode | null,
    outcome: HandledRequest['outcome'],
  ): void {
    if (started < 0) return;
    const durationMs = performance.now() - started;
    notify('handled', { route, format, status, code, outcome, durationMs, ip } satisfies HandledRequest);
  }

  /**
   * Answers a refusal (4xx, with a `rejected` event) or a failure (5xx, with an `error` event),
   * and reports it as handled.
   */
  function refuse(
    req: Request,
    res: Response,
    error: PostbackError,
    request: {
      readonly started: number;
      readonly route: PostbackRoute;
      readonly format: PostbackFormat | null;
      readonly ip: string | null;
      readonly path: string;
      readonly bodyUnread: boolean;
    },
  ): void {
    const { started, route, format, ip, path, bodyUnread } = request;
    if (error.status >= 500) reportError(error);
    else
      notify('rejected', {
        code: error.code,
        status: error.status,
        message: error.message,
        ip,
        method: req.method,
        path,
      });
    sendError(req, res, error, bodyUnread);
    reportHandled(started, route, format, ip, error.status, error.code, error.status >= 500 ? 'failed' : 'rejected');
  }

  /** A request being handled, and what is known of it for its answer and its `handled` report. */
  interface Handling {
    readonly req: Request;
    readonly res: Response;
    readonly route: PostbackRoute;
    readonly receivedAt: Date;
    readonly started: number;
    readonly path: string;
    ip: string | null;
    format: PostbackFormat | null;
    bodyRead: boolean;
  }

  /**
   * Handles one postback. A GET whose store and listeners answer synchronously (the default
   * store) is answered before this returns, and no promise is made; it returns a promise only
   * while it waits for a body or for the delivery.
   */
  function handle(route: PostbackRoute, req: Request, res: Response, routePath: string): Promise<void> | undefined {
    const request: Handling = {
      req,
      res,
      route,
      receivedAt: new Date(),
      // Nothing is measured for nobody: without a `handled` listener, no clock is read.
      started: emitter.listenerCount('handled') === 0 ? -1 : performance.now(),
      path: req.baseUrl + routePath,
      ip: null,
      format: null,
      bodyRead: false,
    };
    try {
      if (closing !== null) throw routerClosed();
      const ip = resolveClientIp(req.socket.remoteAddress, req.headers['x-forwarded-for'], settings.proxyTrust);
      request.ip = ip;
      // Checked before anything else is read: a refused sender costs no parsing.
      if (ip === null || !isAllowedIp(ip)) {
        throw new PostbackError('ip.forbidden', 'this address may not send postbacks');
      }
      // Express answers HEAD through GET routes; a HEAD must never credit anything.
      if (req.method !== 'GET' && req.method !== 'POST') {
        throw new PostbackError('method.not_allowed', `method ${req.method} is not allowed; use GET or POST`);
      }
      const query = parseUrlEncoded(queryStringOf(req.originalUrl), settings.maxFields);
      checkSecret(query, req);
      if (req.method === 'GET') return handleFields(request, ip, query, null);
      return readBody(req, res).then(
        (body) => handleFields(request, ip, query, body),
        (caught: unknown) => {
          refuseCaught(request, caught);
        },
      );
    } catch (caught) {
      refuseCaught(request, caught);
      return undefined;
    }
  }

  /** Turns the fields received (the query's, and the body's if any) into an event, delivers it and answers by the outcome. */
  function handleFields(
    request: Handling,
    ip: string,
    query: FieldRecord,
    body: ReceivedBody | null,
  ): Promise<void> | undefined {
    request.bodyRead = true;
    const { route } = request;
    try {
      const received = body === null ? query : withQueryFields(query, body.record);
      const format = body?.format ?? 'query';
      request.format = format;
      const normalized = normalizeFields(received, fieldIndexes[route]);
      const meta = {
        receivedAt: request.receivedAt,
        ip,
        format,
        route,
        path: request.path,
        key: dedupeKey(route, normalized.canonical),
      } as const;
      const event = buildEvent(route, normalized, received, meta);
      const delivered = deliver(ROUTE_EVENTS[route], event);
      if (!(delivered instanceof Promise)) {
        answer(request, event, delivered);
        return undefined;
      }
      return delivered.then(
        (outcome) => {
          answer(request, event, outcome);
        },
        (caught: unknown) => {
          refuseCaught(request, caught);
        },
      );
    } catch (caught) {
      refuseCaught(request, caught);
      return undefined;
    }
  }

  function answer(request: Handling, event: PostbackEvent, outcome: DeliveryOutcome): void {
    const { req, res, started, route, format, ip } = request;
    if (outcome.kind === 'failed') {
      sendError(req, res, outcome.error, false);
      reportHandled(started, route, format, ip, outcome.error.status, outcome.error.code, 'failed');
      return;
    }
    // Only reconciliation, which answers nobody, is overtaken: a postback is a duplicate then.
    const kind = outcome.kind === 'overtaken' ? 'duplicate' : outcome.kind;
    if (kind === 'duplicate') notify('duplicate', event);
    // With the inbox, a 2xx means stored: the worker delivers it afterwards.
    const answered = inboxDelivery !== null && kind === 'delivered' ? 'stored' : kind;
    sendSuccess(req, res, settings.successResponse, answered);
    reportHandled(started, route, format, ip, res.statusCode, null, answered);
  }

  /** Refuses the request for what was thrown: a PostbackError as it is, anything else as `internal`. */
  function refuseCaught(request: Handling, caught: unknown): void {
    const error =
      caught instanceof PostbackError
        ? caught
        : new PostbackError('internal', 'the postback could not be processed', { cause: caught });
    const { req, res, started, route, format, ip, path, bodyRead } = request;
    refuse(req, res, error, { started, route, format, ip, path, bodyUnread: !bodyRead });
  }

  // One middleware for the four routes, not an express.Router with four route layers: a nested
  // router costs a second round of Express's layer matching on every request, and the four
  // fixed paths need none of it. Case-insensitive and tolerant of a trailing slash, like
  // Express's own routing. Mounted with app.use(path, ...), Express has already cut the mount
  // path from req.url and req.path.
  const routesByPath = new Map<string, PostbackRoute>();
  for (const route of Object.keys(ROUTE_EVENTS) as PostbackRoute[]) {
    routesByPath.set(`/${route}`, route);
    routesByPath.set(`/${route}/`, route);
  }
  emitter.router = function postbackRoutes(req: Request, res: Response, next: NextFunction) {
    const path = requestPath(req);
    const route = routesByPath.get(path.toLowerCase());
    if (route === undefined) {
      next();
      return;
    }
    let pending: Promise<void> | undefined;
    try {
      pending = handle(route, req, res, path);
    } catch (error) {
      answerFailed(res, error);
      return;
    }
    // Answered already: nothing for close() to wait for.
    if (pending === undefined) return;
    // Handled here, not by Express: Express 4 does not catch rejected promises.
    const handled = pending.catch((error: unknown) => {
      answerFailed(res, error);
    });
    handling.add(handled);
    void handled.finally(() => handling.delete(handled));
  };
  /** Writing an answer failed (the response object threw): the connection is dropped. */
  function answerFailed(res: Response, error: unknown): void {
    reportError(new PostbackError('internal', 'the answer could not be written', { cause: error }));
    res.destroy();
  }
  // Express passes an error to the four-argument middleware after the failed one, skipping the
  // router: a host parser's failure on a postback route lands here.
  emitter.errorHandler = function postbackErrors(caught: unknown, req: Request, res: Response, next: NextFunction) {
    const path = requestPath(req);
    const route = routesByPath.get(path.toLowerCase());
    // body-parser's errors (what express.json() and its kin throw) carry a `type`; any other
    // error is the host's own business.
    const fromParser = typeof (caught as { type?: unknown } | null)?.type === 'string';
    if (route === undefined || !fromParser || res.headersSent) {
      next(caught);
      return;
    }
    const started = emitter.listenerCount('handled') === 0 ? -1 : performance.now();
    const ip = resolveClientIp(req.socket.remoteAddress, req.headers['x-forwarded-for'], settings.proxyTrust);
    // The allow-list first, as on the router's own path: a refused sender learns nothing of its body.
    const error =
      ip === null || !isAllowedIp(ip)
        ? new PostbackError('ip.forbidden', 'this address may not send postbacks')
        : fromBodyParserError(caught);
    refuse(req, res, error, { started, route, format: null, ip, path: req.baseUrl + path, bodyUnread: false });
  };
  emitter.inbox = inboxDelivery?.admin ?? null;
  // Reconciled actions go the direct way in both delivery modes: the store's claim keeps them
  // apart from postbacks of the same action, and the report can say what was delivered.
  emitter.setAllowedIps = (allowedIps) => {
    // Compiled whole before the swap: a list that fails its check changes nothing.
    isAllowedIp = compileAllowList(validateRangeList('allowedIps', allowedIps));
  };
  emitter.reconcile = async (reconcileOptions) => {
    const { store } = settings;
    if (store.readJournal === undefined) {
      throw new TypeError('reconcile() needs a store whose journal can be read (readJournal); option store has none');
    }
    if (closing !== null) throw new PostbackError('router.closed', 'this receiver is shutting down');
    const reconciling = reconcileActions(reconcileOptions, {
      readJournal: store.readJournal.bind(store),
      ordering: settings.ordering,
      deliver: async (event, readKey) => directDelivery('action', event, readKey),
      stopped: stopping.signal,
    });
    const running = reconciling.then(ignore, ignore);
    handling.add(running);
    void running.finally(() => handling.delete(running));
    return reconciling;
  };
  emitter.close = (closeOptions = {}) => {
    closing ??= (async () => {
      stopping.abort();
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
  };
  return emitter as unknown as PostbackRouter<T>;
}
