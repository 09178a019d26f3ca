import http from 'node:http';
import zlib from 'node:zlib';
import { expect } from 'chai';
import Fastify from 'fastify';
import Koa from 'koa';
import request from 'supertest';
import { createPostbackRouter, type ActionEvent, type Rejection } from '../lib';
import { LOOPBACK } from './helpers/create-app';
import { rawExchange, startServer, statusOf } from './helpers/server';

/** A JSON postback whose payout keeps its text only if nothing parsed it into a number first. */
const JSON_WITH_NUMBER = '{"ActionId":"8882.1","Status":"pending","Payout":27.750}';

function recorded(postbacks: ReturnType<typeof createPostbackRouter>) {
  const actions: ActionEvent[] = [];
  const rejected: Rejection[] = [];
  postbacks.on('action', (event) => void actions.push(event));
  postbacks.on('rejected', (rejection) => void rejected.push(rejection));
  return { actions, rejected };
}

/**
 * nodeHandler behind a middleware that reads every body to its end and keeps what it read
 * elsewhere, as @koa/bodyparser does (ctx.request.body).
 */
async function behindBodyReadElsewhere() {
  const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
  const { actions } = recorded(postbacks);
  const handle = postbacks.nodeHandler({ basePath: '/impact' });
  const server = await startServer((req, res) => {
    req.resume();
    req.on('end', () => {
      handle(req, res);
    });
  });
  return { server, actions };
}

describe('hosts beside Express', () => {
  describe('fastifyPlugin', () => {
    it('reads a JSON postback past Fastify’s default JSON parser, its numbers as sent ("27.750")', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const { actions } = recorded(postbacks);
      const app = Fastify();
      // The host's own route shows its JSON parser at work: 27.750 arrives as the number 27.75.
      app.post('/echo', (req) => ({ payout: (req.body as { Payout: number }).Payout }));
      await app.register(postbacks.fastifyPlugin, { prefix: '/impact' });
      await app.listen({ port: 0, host: '127.0.0.1' });
      try {
        const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
        const echoed = await request(base).post('/echo').set('Content-Type', 'application/json').send(JSON_WITH_NUMBER);
        expect(echoed.body).to.deep.equal({ payout: 27.75 });
        await request(base)
          .post('/impact/actions')
          .set('Content-Type', 'application/json')
          .send(JSON_WITH_NUMBER)
          .expect(200);
        expect(actions.map((event) => event.payout)).to.deep.equal(['27.750']);
      } finally {
        await app.close();
      }
    });

    it('leaves other paths below its prefix to Fastify (404), and answers HEAD 405 without an event', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const { actions } = recorded(postbacks);
      const app = Fastify();
      await app.register(postbacks.fastifyPlugin, { prefix: '/impact' });
      await app.listen({ port: 0, host: '127.0.0.1' });
      try {
        const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
        const missing = await request(base).get('/impact/action?ActionId=1').expect(404);
        expect(missing.body).to.include({ statusCode: 404 });
        await request(base).head('/impact/actions?ActionId=1').expect(405).expect('Allow', 'GET, POST');
        await request(base).get('/IMPACT/actions?ActionId=1').expect(404);
        await request(base).get('/impact/ACTIONS/?ActionId=1').expect(200);
        expect(actions).to.have.length(1);
      } finally {
        await app.close();
      }
    });
  });

  describe('fetchHandler', () => {
    it('serves a Next.js-style route handler: a JSON postback keeps "27.750", the client from X-Forwarded-For', async () => {
      const postbacks = createPostbackRouter({ allowedIps: ['203.0.113.7'], trustProxy: 1 });
      const { actions } = recorded(postbacks);
      const handler = postbacks.fetchHandler({ basePath: '/api/impact' });
      // app/api/impact/[route]/route.ts: `export const POST = (request: Request) => handler(request)`.
      const POST = (req: Request): Promise<Response> => handler(req);
      const response = await POST(
        new Request('https://shop.example/api/impact/actions', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.7' },
          body: JSON_WITH_NUMBER,
        }),
      );
      expect(response.status).to.equal(200);
      expect(await response.text()).to.equal('OK');
      expect(actions.map((event) => [event.payout, event.meta.ip, event.meta.path])).to.deep.equal([
        ['27.750', '203.0.113.7', '/api/impact/actions'],
      ]);
    });

    it('fails closed without a client address or a trusted proxy, and the rejection says what to pass', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const { actions, rejected } = recorded(postbacks);
      const response = await postbacks.fetchHandler({ basePath: '/impact' })(
        new Request('http://127.0.0.1/impact/actions?ActionId=1', { headers: { 'x-forwarded-for': '127.0.0.1' } }),
      );
      expect(response.status).to.equal(403);
      // The sender learns nothing of the setup; the host's event says what to pass.
      expect(await response.text()).to.equal('ip.forbidden: this address may not send postbacks');
      expect(actions).to.deep.equal([]);
      expect(rejected.map((rejection) => rejection.code)).to.deep.equal(['ip.forbidden']);
      expect(rejected[0]?.message).to.include('clientAddress').and.include('trustProxy');
    });

    it('answers a successResponse of 205 with no body, as a standard Response must, and a retry as a duplicate', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK, successResponse: { status: 205 } });
      const { actions } = recorded(postbacks);
      const handler = postbacks.fetchHandler({ basePath: '/impact' });
      const send = () =>
        handler(new Request('http://127.0.0.1/impact/actions?ActionId=205.1'), { clientAddress: '127.0.0.1' });
      const first = await send();
      const again = await send();
      expect([first.status, again.status]).to.deep.equal([205, 205]);
      expect([await first.text(), again.headers.get('x-postback-outcome')]).to.deep.equal(['', 'duplicate']);
      expect(actions).to.have.length(1);
    });

    it('refuses a body shorter than its Content-Length (400 body.invalid), with no event', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const { actions } = recorded(postbacks);
      const sent = 'ActionId=7.1&Status=pending&Payout=1000.00';
      const cut = new ReadableStream<Uint8Array>({
        start(controller) {
          // The sender meant Payout=1000.00: a stream that ends early must not credit 100.
          controller.enqueue(new TextEncoder().encode(sent.slice(0, -4)));
          controller.close();
        },
      });
      const response = await postbacks.fetchHandler({ basePath: '/impact' })(
        new Request('http://127.0.0.1/impact/actions', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(sent.length) },
          body: cut,
          duplex: 'half',
        }),
        { clientAddress: '127.0.0.1' },
      );
      expect(response.status).to.equal(400);
      expect(await response.text()).to.match(/^body\.invalid: /);
      expect(actions).to.deep.equal([]);
    });

    it('refuses a body a host streams as text rather than bytes, reading no more of it', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK, limit: 1000 });
      const { actions } = recorded(postbacks);
      let pulled = 0;
      let cancelled = false;
      const text = new ReadableStream<string>({
        pull(controller) {
          pulled += 1;
          // 20 MB at most, so that a reader that ignores the limit fails this test, not the process.
          if (pulled > 20) controller.close();
          else controller.enqueue('x'.repeat(1_000_000));
        },
        cancel() {
          cancelled = true;
        },
      });
      const response = await postbacks.fetchHandler({ basePath: '/impact' })(
        new Request('http://127.0.0.1/impact/actions', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: text as unknown as ReadableStream<Uint8Array>,
          duplex: 'half',
        }),
        { clientAddress: '127.0.0.1' },
      );
      expect(response.status).to.equal(500);
      expect([pulled <= 3, cancelled]).to.deep.equal([true, true]);
      expect(actions).to.deep.equal([]);
    });

    it('refuses br bytes that do not inflate as an invalid body, as the Node hosts do', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const handler = postbacks.fetchHandler({ basePath: '/impact' });
      const post = (encoding: string, body: Uint8Array) =>
        handler(
          new Request('http://127.0.0.1/impact/actions', {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-encoding': encoding },
            body,
          }),
          { clientAddress: '127.0.0.1' },
        );
      const garbage = new TextEncoder().encode('this is not compressed at all');
      for (const encoding of ['br', 'gzip', 'deflate']) {
        const response = await post(encoding, garbage);
        expect([encoding, response.status, (await response.text()).split(':')[0]]).to.deep.equal([
          encoding,
          400,
          'body.invalid',
        ]);
      }
      const good = await post('br', zlib.brotliCompressSync('{"ActionId":"9.1"}'));
      expect(good.status).to.equal(503); // listener.missing: read and parsed, nobody listens
    });

    it('answers 404 route.not_found for a path that is not a postback route, with no event', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const { rejected } = recorded(postbacks);
      const handler = postbacks.fetchHandler({ basePath: '/impact' });
      const outside = await handler(new Request('http://127.0.0.1/other/actions'), { clientAddress: '127.0.0.1' });
      const below = await handler(new Request('http://127.0.0.1/impact/action'), { clientAddress: '127.0.0.1' });
      expect([outside.status, below.status]).to.deep.equal([404, 404]);
      expect(await below.text()).to.match(/^route\.not_found: /);
      expect(rejected).to.deep.equal([]);
    });
  });

  describe('nodeHandler', () => {
    it('calls next before it returns for a path that is not a postback route, and answers 404 without next', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const { actions } = recorded(postbacks);
      const handle = postbacks.nodeHandler({ basePath: '/impact/' });
      const passedOn: string[] = [];
      const server = await startServer((req, res) => {
        if (req.url?.startsWith('/bare')) {
          req.url = req.url.slice('/bare'.length);
          handle(req, res);
          return;
        }
        const nexts: string[] = [];
        handle(req, res, () => nexts.push('next'));
        if (nexts.length > 0) {
          passedOn.push(req.url ?? '');
          res.end('host');
        }
      });
      try {
        await request(server.base).get('/impact/inquiry').expect(200, 'host');
        await request(server.base).get('/impactx/actions').expect(200, 'host');
        const bare = await request(server.base).get('/bare/impact/inquiry').expect(404);
        expect(bare.text).to.match(/^route\.not_found: /);
        await request(server.base).get('/impact/actions?ActionId=1').expect(200, 'OK');
        expect(passedOn).to.deep.equal(['/impact/inquiry', '/impactx/actions']);
        expect(actions).to.have.length(1);
      } finally {
        await server.close();
      }
    });

    it('refuses a body a host parser consumed without leaving it in req.body (500 internal), with no event', async () => {
      const { server, actions } = await behindBodyReadElsewhere();
      try {
        const res = await request(server.base)
          .post('/impact/actions?ActionId=2.1&Status=pending')
          .type('form')
          .send('Payout=1000.00')
          .expect(500);
        expect(res.text).to.match(/^internal: /);
        expect(actions).to.deep.equal([]);
      } finally {
        await server.close();
      }
    });

    it('takes a query-only POST with no body as such, even when a host middleware read the (empty) stream', async () => {
      const { server, actions } = await behindBodyReadElsewhere();
      try {
        await request(server.base)
          .post('/impact/actions?ActionId=2.2&Status=pending')
          .set('Content-Length', '0')
          .expect(200);
        expect(actions.map((event) => event.actionId)).to.deep.equal(['2.2']);
      } finally {
        await server.close();
      }
    });

    it('serves an absolute-form request target (GET http://host/impact/actions) as Express does', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const { actions } = recorded(postbacks);
      const handle = postbacks.nodeHandler({ basePath: '/impact' });
      const server = await startServer((req, res) => {
        handle(req, res);
      });
      try {
        const answer = await rawExchange(server.port, [
          'GET http://shop.example/impact/actions?ActionId=3.1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n',
        ]);
        expect(statusOf(answer)).to.equal(200);
        expect(actions.map((event) => [event.actionId, event.meta.path])).to.deep.equal([['3.1', '/impact/actions']]);
        // Dot segments stay as sent, as Express and an origin-form target keep them: no route there.
        for (const target of ['http://h/other/../impact/actions', 'http://h/x/%2e%2e/impact/actions']) {
          const outside = await rawExchange(server.port, [
            `GET ${target}?ActionId=3.2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`,
          ]);
          expect([target, statusOf(outside)]).to.deep.equal([target, 404]);
        }
        expect(actions).to.have.length(1);
      } finally {
        await server.close();
      }
    });

    it('runs under Koa with ctx.respond = false, as the README shows', async () => {
      const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
      const { actions } = recorded(postbacks);
      const handle = postbacks.nodeHandler({ basePath: '/impact' });
      const app = new Koa();
      app.use(async (ctx, next) => {
        const nexts: string[] = [];
        handle(ctx.req, ctx.res, () => nexts.push('next'));
        if (nexts.length > 0) {
          await next();
          return;
        }
        ctx.respond = false;
      });
      app.use((ctx) => {
        ctx.body = 'koa';
      });
      const callback = app.callback();
      const server = http.createServer((req, res) => {
        void callback(req, res);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
        await request(base)
          .post('/impact/actions')
          .set('Content-Type', 'application/json')
          .send(JSON_WITH_NUMBER)
          .expect(200);
        await request(base).get('/elsewhere').expect(200, 'koa');
        expect(actions.map((event) => event.payout)).to.deep.equal(['27.750']);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });

    for (const basePath of ['impact', '/impact?x=1', 42]) {
      it(`throws at setup for basePath ${JSON.stringify(basePath)}, naming the option`, () => {
        const postbacks = createPostbackRouter({ allowedIps: LOOPBACK });
        const options = { basePath } as unknown as { basePath: string };
        expect(() => postbacks.nodeHandler(options)).to.throw(TypeError, /basePath/);
        expect(() => postbacks.fetchHandler(options)).to.throw(TypeError, /basePath/);
      });
    }
  });
});
