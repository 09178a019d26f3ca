/**
 * The servers the HTTP benchmark compares, one per child process (TARGET=...):
 * - floor: bare node:http that parses the same body and answers 200 (what Node itself costs);
 * - express: the route a user would write by hand, with Express's parsers and xml2js;
 * - router: this package in Express, allow-list on, default store, a listener that does nothing;
 * - node, fetch, fastify: the same receiver through nodeHandler on node:http, fetchHandler behind
 *   @hono/node-server's listener, and fastifyPlugin in Fastify.
 * The router is the compiled package (dist/, built by `npm run bench` first), as users run it:
 * under tsx, every call between this package's modules would go through an export getter.
 */
import http from 'node:http';
import { getRequestListener, type Http2Bindings, type HttpBindings } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { parseStringPromise } from 'xml2js';
import path from 'node:path';
import {
  createPostbackRouter,
  PostgresStore,
  RedisStore,
  SqliteStore,
  type PostbackInbox,
  type PostbackRouterOptions,
} from '../dist';

function parseBody(contentType: string, text: string): unknown {
  if (contentType.startsWith('application/json')) return JSON.parse(text);
  if (contentType.includes('xml')) return parseStringPromise(text);
  return Object.fromEntries(new URLSearchParams(text));
}

function floor(): http.RequestListener {
  return (req, res) => {
    const url = req.url ?? '';
    if (req.method === 'GET') {
      Object.fromEntries(new URLSearchParams(url.slice(url.indexOf('?') + 1)));
      res.end('OK');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void Promise.resolve(parseBody(req.headers['content-type'] ?? '', Buffer.concat(chunks).toString('utf8'))).then(
        () => res.end('OK'),
        () => {
          res.statusCode = 400;
          res.end('bad');
        },
      );
    });
  };
}

function handWrittenExpress(): http.RequestListener {
  const app = express();
  app.get('/impact/actions', (req, res) => {
    // What a hand-written route does at the least: look at the fields it was sent.
    if (Object.keys(req.query).length === 0) {
      res.status(400).send('no fields');
      return;
    }
    res.send('OK');
  });
  app.post(
    '/impact/actions',
    express.json(),
    express.urlencoded({ extended: false }),
    express.text({ type: ['application/xml', 'text/xml'] }),
    async (req, res) => {
      if (typeof req.body === 'string') await parseStringPromise(req.body);
      res.send('OK');
    },
  );
  return app;
}

/**
 * The router's store and delivery, by STORE (bench/stores.ts): memory (the default), sqlite (a
 * file in BENCH_DIR, its default durability), redis (REDIS_URL), postgres (DATABASE_URL, schema
 * BENCH_SCHEMA), and sqliteInbox and postgresInbox (delivery: 'inbox' on those).
 */
function storeOptions(): Partial<PostbackRouterOptions<unknown>> {
  const store = process.env['STORE'] ?? 'memory';
  const dir = process.env['BENCH_DIR'] ?? '.';
  const sqlite = () => new SqliteStore({ path: path.join(dir, `${store}.db`) });
  const postgres = () =>
    new PostgresStore({
      connectionString: process.env['DATABASE_URL'] ?? '',
      schema: process.env['BENCH_SCHEMA'] ?? 'public',
      tablePrefix: `${store.toLowerCase()}_`,
    });
  switch (store) {
    case 'memory':
      return {};
    case 'sqlite':
      return { store: sqlite() };
    case 'redis':
      return { store: new RedisStore({ url: process.env['REDIS_URL'] ?? '', keyPrefix: `bench:${process.pid}:` }) };
    case 'postgres':
      return { store: postgres() };
    case 'sqliteInbox':
      return { store: sqlite(), delivery: 'inbox' };
    case 'postgresInbox':
      return { store: postgres(), delivery: 'inbox' };
    default:
      throw new Error(`unknown STORE ${store}`);
  }
}

/** With delivery: 'inbox', the router's inbox: the stores benchmark waits for it to empty. */
let inbox: PostbackInbox | null = null;

function receiver() {
  // BENCH_HISTORY=0: with option history off (on by default).
  const postbacks = createPostbackRouter({
    allowedIps: ['127.0.0.1', '::1'],
    ...storeOptions(),
    history: process.env['BENCH_HISTORY'] !== '0',
    // BENCH_TELEMETRY=0: with option telemetry off (bench/option-cost.ts compares).
    telemetry: process.env['BENCH_TELEMETRY'] !== '0',
  });
  postbacks.on('action', () => undefined);
  inbox = postbacks.inbox;
  return postbacks;
}

function router(): http.RequestListener {
  const app = express();
  app.use('/impact', receiver().router);
  return app;
}

function nodeHost(): http.RequestListener {
  const handle = receiver().nodeHandler({ basePath: '/impact' });
  return (req, res) => {
    handle(req, res);
  };
}

function fetchHost(): http.RequestListener {
  const handle = receiver().fetchHandler({ basePath: '/impact' });
  const listener = getRequestListener((request, env: HttpBindings | Http2Bindings) =>
    handle(request, { clientAddress: env.incoming.socket.remoteAddress }),
  );
  return (req, res) => {
    void listener(req, res);
  };
}

/** Fastify's router as a plain listener, once the app is ready, as Fastify's own server runs it. */
async function fastifyHost(): Promise<http.RequestListener> {
  const app = Fastify();
  await app.register(receiver().fastifyPlugin, { prefix: '/impact' });
  await app.ready();
  return (req, res) => {
    app.routing(req, res);
  };
}

const LISTENERS: Record<string, () => http.RequestListener | Promise<http.RequestListener>> = {
  floor,
  express: handWrittenExpress,
  router,
  node: nodeHost,
  fetch: fetchHost,
  fastify: fastifyHost,
};
const target = process.env['TARGET'] ?? 'router';
void Promise.resolve((LISTENERS[target] ?? router)()).then((listener) => {
  const server = http.createServer(listener);
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.send?.({ port: typeof address === 'object' && address !== null ? address.port : 0 });
  });
});
// Exit normally on SIGINT, so that --cpu-prof writes its profile.
process.on('SIGINT', () => process.exit(0));
// The memory benchmark asks for resident memory and heap in use after a full collection.
process.on('message', (message: { type?: string }) => {
  if (message.type === 'waiting') {
    // How many stored postbacks wait for delivery (0 without an inbox).
    void (inbox?.stats() ?? Promise.resolve({ pending: 0, retrying: 0 })).then(({ pending, retrying }) => {
      process.send?.({ type: 'waiting', count: pending + retrying });
    });
    return;
  }
  if (message.type !== 'rss') return;
  (globalThis as { gc?: () => void }).gc?.();
  const { rss, heapUsed } = process.memoryUsage();
  process.send?.({ type: 'rss', rss, heapUsed });
});
