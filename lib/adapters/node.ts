import type { IncomingMessage, ServerResponse } from 'node:http';
import { createNodeBodyReader } from '../body/read-node-body';
import { queryStringOf } from '../body/parse-urlencoded';
import { routeNotFound } from '../errors';
import { errorAnswer } from '../core/answer';
import type { Receiver } from '../core/receiver';
import { nodeIncoming } from '../http/node-incoming';
import { pathOf } from '../http/request-path';
import { writeAnswer, writeWhenReady } from '../http/write-answer';
import { normalizeBasePath, routeBelow } from './base-path';

export interface NodeHandlerOptions {
  /** Where the routes live: '/impact' serves /impact/actions, /impact/clearing, /impact/inquiries, /impact/catalog. */
  readonly basePath?: string;
}

/**
 * A request listener for `http.createServer`, and for Koa (with `ctx.respond = false`), Polka
 * and the like. `next`, when given, is called for a path that is not a postback route, and
 * called before this returns, so a host can tell at once; without it such a path is answered
 * 404 `route.not_found`.
 */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

export function createNodeHandler(receiver: Receiver, options: NodeHandlerOptions = {}): NodeHandler {
  const basePath = normalizeBasePath(options.basePath);
  const readNodeBody = createNodeBodyReader(receiver.bodyReader);

  return function postbackHandler(req, res, next) {
    const url = originForm(req.url ?? '/');
    const path = pathOf(url);
    const route = routeBelow(path, basePath);
    if (route === undefined) {
      if (next !== undefined) next();
      else writeAnswer(res, errorAnswer(req.headers, routeNotFound(), true));
      return;
    }
    const incoming = nodeIncoming(req, path, queryStringOf(url), () => readNodeBody(req, res));
    writeWhenReady(res, receiver.receive(route, incoming), receiver.answerNotWritten);
  };
}

/** The scheme and authority of an absolute-form target: `http://host:80`. */
const SCHEME_AND_AUTHORITY = /^[a-z][a-z\d+.-]*:\/\/[^/?#]*/i;

/**
 * A request target in absolute form (`GET http://host/impact/actions`, which proxies send) as
 * its path and query, as Express's url.parse reads it: the scheme and authority cut off and
 * nothing else changed (WHATWG URL would resolve `..`, which no other target gets).
 */
function originForm(url: string): string {
  if (url.startsWith('/')) return url;
  const rest = url.replace(SCHEME_AND_AUTHORITY, '');
  if (rest === url) return url;
  return rest.startsWith('/') ? rest : `/${rest}`;
}
