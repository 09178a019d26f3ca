/**
 * The behaviour suite's hosts: `POSTBACK_HOST=node|fastify|hono|fetch` runs the router's tests
 * against that host instead of Express (`npm run test:hosts`), each with the real framework.
 */
import type http from 'node:http';
import { getRequestListener, type Http2Bindings, type HttpBindings } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { RequestHandler } from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import type { PostbackRouter } from '../../lib';

export const HOSTS = ['express', 'node', 'fastify', 'hono', 'fetch'] as const;
export type HostName = (typeof HOSTS)[number];

function hostFromEnvironment(): HostName {
  const named = process.env['POSTBACK_HOST'] ?? 'express';
  const host = HOSTS.find((candidate) => candidate === named);
  if (host === undefined) throw new Error(`POSTBACK_HOST must be one of ${HOSTS.join(', ')}, got ${named}`);
  return host;
}

export const HOST: HostName = hostFromEnvironment();

/**
 * True where Express middleware (express.json() and kin) can run before the router: Express,
 * and node:http with a middleware chain in front as Polka and Connect hosts have. Fastify reads
 * the raw body past its own parsers, and a Fetch body can be read once.
 */
export const HOST_RUNS_EXPRESS_MIDDLEWARE = HOST === 'express' || HOST === 'node';

/** A request listener serving `postbacks` at `mountPath` on the host named by POSTBACK_HOST. */
export function hostApp<T>(
  postbacks: PostbackRouter<T>,
  mountPath: string,
  before: readonly RequestHandler[],
): http.RequestListener {
  if (before.length > 0 && !HOST_RUNS_EXPRESS_MIDDLEWARE) {
    throw new Error(`Express middleware cannot run before the router on ${HOST}`);
  }
  switch (HOST) {
    case 'express':
      throw new Error('createApp builds the Express host itself');
    case 'node':
      return nodeHost(postbacks, mountPath, before);
    case 'fastify':
      return fastifyHost(postbacks, mountPath);
    case 'hono':
      return honoHost(postbacks, mountPath);
    case 'fetch':
      return fetchHost(postbacks, mountPath);
  }
}

function notFound(res: http.ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain' }).end('host: not found');
}

function nodeHost<T>(
  postbacks: PostbackRouter<T>,
  basePath: string,
  before: readonly RequestHandler[],
): http.RequestListener {
  const handle = postbacks.nodeHandler({ basePath });
  return (req, res) => {
    // A Connect-style chain, as Polka and Connect run middleware before a handler.
    const run = (index: number): void => {
      const middleware = before[index];
      if (middleware === undefined) {
        handle(req, res, () => {
          notFound(res);
        });
        return;
      }
      void middleware(req as never, res as never, (error?: unknown) => {
        if (error === undefined) run(index + 1);
        else res.writeHead(400).end(`host: ${error instanceof Error ? error.message : 'failed'}`);
      });
    };
    run(0);
  };
}

function fastifyHost<T>(postbacks: PostbackRouter<T>, prefix: string): http.RequestListener {
  // A host that parses JSON and forms its own way elsewhere: the plugin must read past it.
  const app = Fastify();
  void app.register(postbacks.fastifyPlugin, { prefix });
  const ready = app.ready();
  return (req, res) => {
    void ready.then(() => {
      app.routing(req, res);
    });
  };
}

function honoHost<T>(postbacks: PostbackRouter<T>, basePath: string): http.RequestListener {
  const handle = postbacks.fetchHandler({ basePath });
  const app = new Hono();
  app.all(`${basePath}/*`, (c) => handle(c.req.raw, { clientAddress: getConnInfo(c).remote.address }));
  return asListener(getRequestListener(app.fetch));
}

/** The Fetch handler behind a real server, with nothing between: what Bun.serve or Deno.serve give. */
function fetchHost<T>(postbacks: PostbackRouter<T>, basePath: string): http.RequestListener {
  const handle = postbacks.fetchHandler({ basePath });
  return asListener(
    getRequestListener((request, env: HttpBindings | Http2Bindings) =>
      handle(request, { clientAddress: env.incoming.socket.remoteAddress }),
    ),
  );
}

/** @hono/node-server's listener returns a promise it handles itself: a plain listener for http. */
function asListener(listener: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<unknown>) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void listener(req, res);
  };
}
