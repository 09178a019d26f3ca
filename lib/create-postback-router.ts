import { EventEmitter } from 'node:events';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { createExpressAdapter } from './adapters/express';
import { createFastifyPlugin, type FastifyPlugin } from './adapters/fastify';
import { createFetchHandler, type FetchHandler, type FetchHandlerOptions } from './adapters/fetch';
import { createNodeHandler, type NodeHandler, type NodeHandlerOptions } from './adapters/node';
import { createReceiver } from './core/receiver';
import type { PostbackInbox } from './delivery/inbox';
import type { PostbackHistory } from './history/history';
import type { PostbackEventMap, TypedEventEmitter } from './events';
import type { ReconcileOptions, ReconcileReport, ReconciliationRun } from './reconcile/reconcile';
import { normalizeOptions, type PostbackRouterOptions } from './options';

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
   * What happened to every postback: `list()` pages through it newest first, `action(id)` gives
   * one action's timeline. Null with `history: false`.
   */
  readonly history: PostbackHistory | null;
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
  /** The last reconciliation this router ran that has ended (its report, or why it failed), or null. */
  lastReconciliation(): ReconciliationRun | null;
  /**
   * Replaces the allow-list without a restart (impact.com adds ranges now and then). The list is
   * checked as option `allowedIps` is: a mistake throws a TypeError and the old list stays. The
   * next request is checked against the new one; one being read keeps the answer it had.
   */
  setAllowedIps(allowedIps: readonly string[]): void;
  /**
   * For `http.createServer`, Koa (`ctx.respond = false`), Polka and the like: serves
   * `<basePath>/actions`, `/clearing`, `/inquiries` and `/catalog`, and calls `next` (or
   * answers 404 `route.not_found`) for any other path. Same answers and events as `router`.
   */
  nodeHandler(options?: NodeHandlerOptions): NodeHandler;
  /**
   * For hosts that speak web-standard Request and Response: Next.js route handlers (Node.js
   * runtime), Hono, Bun, Deno. Pass the client's address as `info.clientAddress` (or set
   * `trustProxy` behind a proxy): without either, every postback is refused `ip.forbidden`.
   */
  fetchHandler(options?: FetchHandlerOptions): FetchHandler;
  /**
   * A Fastify plugin: `app.register(postbacks.fastifyPlugin, { prefix: '/impact' })`. It reads the
   * raw body itself, whatever content-type parsers the host registered.
   */
  readonly fastifyPlugin: FastifyPlugin;
}

class PostbackReceiver extends EventEmitter {
  // Assigned right after construction: these need the emitter.
  router!: RequestHandler;
  errorHandler!: ErrorRequestHandler;
  inbox!: PostbackInbox | null;
  history!: PostbackHistory | null;
  close!: (options?: { readonly timeoutMs?: number }) => Promise<void>;
  reconcile!: (options: ReconcileOptions) => Promise<ReconcileReport>;
  lastReconciliation!: () => ReconciliationRun | null;
  setAllowedIps!: (allowedIps: readonly string[]) => void;
  nodeHandler!: (options?: NodeHandlerOptions) => NodeHandler;
  fetchHandler!: (options?: FetchHandlerOptions) => FetchHandler;
  fastifyPlugin!: FastifyPlugin;
}

/**
 * Creates the postback receiver. Options are checked here, once: a mistake throws a TypeError
 * naming the option. Nothing throws at request time; every outcome is an HTTP answer. The
 * receiver itself knows no host (lib/core/); each host's adapter is a thin layer on it.
 */
export function createPostbackRouter<T = undefined>(options: PostbackRouterOptions<T>): PostbackRouter<T> {
  const settings = normalizeOptions(options);
  const emitter = new PostbackReceiver();
  const receiver = createReceiver(emitter, settings);
  const express = createExpressAdapter(receiver);
  emitter.router = express.router;
  emitter.errorHandler = express.errorHandler;
  emitter.inbox = receiver.inbox;
  emitter.history = receiver.history;
  emitter.close = receiver.close;
  emitter.reconcile = receiver.reconcile;
  emitter.lastReconciliation = receiver.lastReconciliation;
  emitter.setAllowedIps = receiver.setAllowedIps;
  emitter.nodeHandler = (handlerOptions) => createNodeHandler(receiver, handlerOptions);
  emitter.fetchHandler = (handlerOptions) => createFetchHandler(receiver, handlerOptions);
  emitter.fastifyPlugin = createFastifyPlugin(receiver);
  return emitter as unknown as PostbackRouter<T>;
}
