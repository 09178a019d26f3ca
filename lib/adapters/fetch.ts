import { readWebBody } from '../body/read-web-body';
import { errorAnswer, isBodiless, type Answer } from '../core/answer';
import type { IncomingPostback, RequestHeaders } from '../core/incoming';
import type { Receiver } from '../core/receiver';
import { routeNotFound } from '../errors';
import { normalizeBasePath, routeBelow } from './base-path';

export interface FetchHandlerOptions {
  /** Where the routes live: '/impact' serves /impact/actions, /impact/clearing, /impact/inquiries, /impact/catalog. */
  readonly basePath?: string;
}

/** What the host knows of the connection that a `Request` does not carry. */
export interface FetchConnectionInfo {
  /**
   * The peer's address (Hono: `getConnInfo(c).remote.address`; Bun: `server.requestIP(req)?.address`;
   * Deno: `info.remoteAddr.hostname`). Without it, and without `trustProxy`, every postback is
   * refused `ip.forbidden`: the allow-list cannot be checked.
   */
  readonly clientAddress?: string | undefined;
}

/** A web-standard handler: Next.js route handlers (Node.js runtime), Hono, Bun, Deno. */
export type FetchHandler = (request: Request, info?: FetchConnectionInfo) => Promise<Response>;

export function createFetchHandler(receiver: Receiver, options: FetchHandlerOptions = {}): FetchHandler {
  const basePath = normalizeBasePath(options.basePath);

  return async function postbackHandler(request, info) {
    const url = new URL(request.url);
    const headers = headerRecord(request.headers);
    const route = routeBelow(url.pathname, basePath);
    if (route === undefined) return toResponse(errorAnswer(headers, routeNotFound(), false));
    const incoming: IncomingPostback = {
      method: request.method,
      path: url.pathname,
      query: url.search.slice(1),
      headers,
      remoteAddress: info?.clientAddress,
      readBody: () => readWebBody(request, receiver.bodyReader),
    };
    return toResponse(await receiver.receive(route, incoming));
  };
}

/** Headers as Node gives them (lower-case names), which is what the receiver reads. */
function headerRecord(headers: Headers): RequestHeaders {
  const record: Record<string, string> = {};
  headers.forEach((value, name) => {
    record[name] = value;
  });
  return record;
}

function toResponse(answer: Answer): Response {
  // A standard Response of status 204 or 205 may not have a body, not even an empty one.
  const body = isBodiless(answer.status) || answer.body === '' ? null : answer.body;
  return new Response(body, { status: answer.status, headers: answer.headers });
}
