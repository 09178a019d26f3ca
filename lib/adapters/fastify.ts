import type { IncomingMessage } from 'node:http';
import { createNodeBodyReader } from '../body/read-node-body';
import { queryStringOf } from '../body/parse-urlencoded';
import type { Answer } from '../core/answer';
import { nodeIncoming } from '../http/node-incoming';
import { pathOf } from '../http/request-path';
import type { Receiver } from '../core/receiver';
import { routeBelow } from './base-path';

// Fastify's own types are not imported: a host without Fastify must still compile ours. These
// are the parts the plugin uses, which a Fastify 4 or 5 instance has.
export interface FastifyRequestLike {
  readonly raw: IncomingMessage;
  readonly url: string;
}
export interface FastifyReplyLike {
  code(statusCode: number): FastifyReplyLike;
  headers(values: Record<string, string>): FastifyReplyLike;
  send(payload?: unknown): FastifyReplyLike;
  callNotFound(): void;
}
export interface FastifyInstanceLike {
  readonly prefix: string;
  removeAllContentTypeParsers(): void;
  addContentTypeParser(
    contentType: string,
    parser: (request: unknown, payload: unknown, done: (error: Error | null, body?: unknown) => void) => void,
  ): void;
  all(path: string, handler: (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<unknown>): unknown;
}

/** `app.register(postbacks.fastifyPlugin, { prefix: '/impact' })`. */
export type FastifyPlugin = (instance: FastifyInstanceLike, options: unknown, done: (error?: Error) => void) => void;

/**
 * Fastify: the routes are registered in the plugin's own scope, where every content-type parser
 * the host registered is replaced by one that reads nothing, so the body reaches the receiver's
 * reader as bytes whatever the host parses elsewhere (Fastify's JSON parser would turn
 * "27.750" into 27.75). Paths are matched by the receiver, as on every host: case-insensitive,
 * with or without a trailing slash; any other path gets Fastify's 404.
 */
export function createFastifyPlugin(receiver: Receiver): FastifyPlugin {
  const readNodeBody = createNodeBodyReader(receiver.bodyReader);

  return function postbackPlugin(instance, _options, done) {
    instance.removeAllContentTypeParsers();
    instance.addContentTypeParser('*', (_request, _payload, parsed) => {
      parsed(null);
    });
    instance.all('/*', async (request, reply) => {
      const url = request.url;
      const path = pathOf(url);
      const route = routeBelow(path, instance.prefix);
      if (route === undefined) {
        reply.callNotFound();
        return reply;
      }
      const { raw } = request;
      const incoming = nodeIncoming(raw, path, queryStringOf(url), () => readNodeBody(raw, undefined));
      const answer: Answer = await receiver.receive(route, incoming);
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
    done();
  };
}
