import type http from 'node:http';
import express from 'express';
import { hostApp, HOST } from './hosts';
import {
  createPostbackRouter,
  type ActionEvent,
  type CatalogEvent,
  type InquiryEvent,
  type PostbackError,
  type PostbackEvent,
  type PostbackRouter,
  type PostbackRouterOptions,
  type Rejection,
} from '../../lib';

export const LOOPBACK = ['127.0.0.1', '::1'];

export interface Recorded {
  readonly action: ActionEvent[];
  readonly inquiry: InquiryEvent[];
  readonly catalog: CatalogEvent[];
  readonly stale: (ActionEvent | InquiryEvent)[];
  readonly duplicate: PostbackEvent[];
  readonly rejected: Rejection[];
  readonly error: PostbackError[];
}

export interface TestApp<T = undefined> {
  /** The host serving the router (Express, or the host POSTBACK_HOST names), as a request listener. */
  readonly app: http.RequestListener;
  readonly postbacks: PostbackRouter<T>;
  readonly events: Recorded;
}

export interface CreateAppOptions {
  /** Recording listeners for action, inquiry and catalog; off to test "no listener". */
  readonly listen?: boolean;
  /** Middleware the host app runs before the router. */
  readonly before?: readonly express.RequestHandler[];
  readonly mountPath?: string;
}

/** The stale events of actions, in the order they came. */
export function staleActions(events: Recorded): ActionEvent[] {
  return events.stale.filter((event): event is ActionEvent => event.kind === 'action');
}

/** An Express app with the router mounted at /impact and every event recorded. */
export function createApp<T = undefined>(
  options: Partial<PostbackRouterOptions<T>> = {},
  setup: CreateAppOptions = {},
): TestApp<T> {
  const postbacks = createPostbackRouter<T>({ allowedIps: LOOPBACK, ...options });
  const events: Recorded = {
    action: [],
    inquiry: [],
    catalog: [],
    stale: [],
    duplicate: [],
    rejected: [],
    error: [],
  };
  if (setup.listen !== false) {
    postbacks.on('action', (event) => void events.action.push(event));
    postbacks.on('inquiry', (event) => void events.inquiry.push(event));
    postbacks.on('catalog', (event) => void events.catalog.push(event));
  }
  postbacks.on('stale', (event) => void events.stale.push(event));
  postbacks.on('duplicate', (event) => void events.duplicate.push(event));
  postbacks.on('rejected', (rejection) => void events.rejected.push(rejection));
  postbacks.on('error', (error) => void events.error.push(error));
  const mountPath = setup.mountPath ?? '/impact';
  if (HOST !== 'express') {
    return { app: hostApp(postbacks, mountPath, setup.before ?? []), postbacks, events };
  }
  const app = express();
  app.disable('x-powered-by');
  for (const middleware of setup.before ?? []) app.use(middleware);
  app.use(mountPath, postbacks.router);
  return { app, postbacks, events };
}

/** The event without what legitimately differs between deliveries of the same postback. */
export function comparable(event: PostbackEvent | undefined): unknown {
  if (event === undefined) throw new Error('expected an event, got none');
  const { receivedAt: _receivedAt, format: _format, ...meta } = event.meta;
  return { ...event, meta };
}

/** Error bodies in the `code: message` plain-text form. */
export function errorCode(text: string): string {
  return text.split(':')[0] ?? '';
}
