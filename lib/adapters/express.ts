import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { createNodeBodyReader } from '../body/read-node-body';
import { queryStringOf } from '../body/parse-urlencoded';
import type { IncomingPostback } from '../core/incoming';
import type { Receiver } from '../core/receiver';
import { routeOf } from '../core/routes';
import { nodeIncoming } from '../http/node-incoming';
import { requestPath } from '../http/request-path';
import { writeAnswer, writeWhenReady } from '../http/write-answer';

export interface ExpressAdapter {
  readonly router: RequestHandler;
  readonly errorHandler: ErrorRequestHandler;
}

/**
 * Express: one middleware for the four routes, not an express.Router with four route layers: a
 * nested router costs a second round of Express's layer matching on every request, and the four
 * fixed paths need none of it. Mounted with app.use(path, ...), Express has already cut the
 * mount path from req.url and req.path.
 */
export function createExpressAdapter(receiver: Receiver): ExpressAdapter {
  const readNodeBody = createNodeBodyReader(receiver.bodyReader);

  function incoming(req: Request, res: Response, routePath: string): IncomingPostback {
    return nodeIncoming(req, req.baseUrl + routePath, queryStringOf(req.originalUrl), () => readNodeBody(req, res));
  }

  const router = function postbackRoutes(req: Request, res: Response, next: NextFunction): void {
    const path = requestPath(req);
    const route = routeOf(path);
    if (route === undefined) {
      next();
      return;
    }
    writeWhenReady(res, receiver.receive(route, incoming(req, res, path)), receiver.answerNotWritten);
  };

  // Express passes an error to the four-argument middleware after the failed one, skipping the
  // router: a host parser's failure on a postback route lands here.
  const errorHandler = function postbackErrors(caught: unknown, req: Request, res: Response, next: NextFunction) {
    const path = requestPath(req);
    const route = routeOf(path);
    // body-parser's errors (what express.json() and its kin throw) carry a `type`; any other
    // error is the host's own business.
    const fromParser = typeof (caught as { type?: unknown } | null)?.type === 'string';
    if (route === undefined || !fromParser || res.headersSent) {
      next(caught);
      return;
    }
    writeAnswer(res, receiver.refuseParserError(route, incoming(req, res, path), caught));
  };

  return { router, errorHandler };
}
