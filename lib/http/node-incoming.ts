import type { IncomingMessage } from 'node:http';
import type { ReceivedBody } from '../body/read-body';
import type { IncomingPostback } from '../core/incoming';

/** A Node request as the receiver reads it: what Express, node:http, Koa and Fastify all give. */
export function nodeIncoming(
  req: IncomingMessage,
  path: string,
  query: string,
  readBody: () => Promise<ReceivedBody | null>,
): IncomingPostback {
  return {
    method: req.method ?? 'GET',
    path,
    query,
    headers: req.headers,
    remoteAddress: req.socket.remoteAddress,
    readBody,
  };
}
