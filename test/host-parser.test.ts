import express, { type ErrorRequestHandler } from 'express';
import { expect } from 'chai';
import request from 'supertest';
import { createPostbackRouter, type HandledRequest, type Rejection } from '../lib';
import { LOOPBACK } from './helpers/create-app';

/** A host app with its own JSON parser mounted in the given order around the router. */
function hostApp(order: 'parser first' | 'router first', allowedIps: readonly string[] = LOOPBACK) {
  const postbacks = createPostbackRouter({ allowedIps });
  const actions: string[] = [];
  const rejected: Rejection[] = [];
  const handled: HandledRequest[] = [];
  postbacks.on('action', (event) => void actions.push(event.actionId));
  postbacks.on('rejected', (rejection) => void rejected.push(rejection));
  postbacks.on('handled', (info) => void handled.push(info));
  const app = express();
  const hostErrors: unknown[] = [];
  const hostHandler: ErrorRequestHandler = (error, _req, res, _next) => {
    hostErrors.push(error);
    res.status(599).send('host handler');
  };
  if (order === 'parser first') {
    app.use(express.json({ limit: '1kb' }));
    app.use('/impact', postbacks.router, postbacks.errorHandler);
  } else {
    app.use('/impact', postbacks.router, postbacks.errorHandler);
    app.use(express.json({ limit: '1kb' }));
  }
  app.post('/orders', (_req, res) => {
    res.send('orders');
  });
  app.use(hostHandler);
  return { app, actions, rejected, handled, hostErrors };
}

describe("a host's body parser around the router", () => {
  for (const order of ['parser first', 'router first'] as const) {
    describe(order, () => {
      it('a good JSON postback is delivered', async () => {
        const { app, actions } = hostApp(order);
        await request(app).post('/impact/actions').send({ ActionId: '1000.1.1', Payout: '1.00' }).expect(200);
        expect(actions).to.deep.equal(['1000.1.1']);
      });

      it("broken JSON gets the router's answer (format, code) and a rejected event, never Express's HTML page", async () => {
        const { app, actions, rejected, handled, hostErrors } = hostApp(order);
        const res = await request(app)
          .post('/impact/actions')
          .set('Content-Type', 'application/json')
          .set('Accept', 'application/json')
          .send('{"ActionId": "1000.1.2",');
        expect(res.status).to.equal(400);
        expect(res.headers['content-type']).to.match(/^application\/json/);
        expect((res.body as { error: { code: string } }).error.code).to.equal('body.invalid');
        expect(res.text).not.to.match(/<html|<pre>/i);
        expect(rejected.map((rejection) => [rejection.code, rejection.path])).to.deep.equal([
          ['body.invalid', '/impact/actions'],
        ]);
        expect(handled.map((info) => info.outcome)).to.deep.equal(['rejected']);
        expect(actions).to.have.length(0);
        expect(hostErrors).to.have.length(0);
      });

      it('an oversized body is 413 body.too_large in plain text', async () => {
        const { app, rejected } = hostApp(order);
        const res = await request(app)
          .post('/impact/actions')
          .set('Content-Type', 'application/json')
          .send(JSON.stringify({ ActionId: '1', Pad: 'x'.repeat(200_000) }));
        expect(res.status).to.equal(413);
        expect(res.text).to.match(/^body\.too_large: /);
        expect(rejected.map((rejection) => rejection.code)).to.deep.equal(['body.too_large']);
      });

      it("a sender outside the allow-list gets 403 whatever its body, and other paths' errors reach the host", async () => {
        const { app, hostErrors } = hostApp(order, ['192.0.2.1']);
        const res = await request(app).post('/impact/actions').set('Content-Type', 'application/json').send('{');
        expect(res.status).to.equal(403);
        expect(res.text).to.match(/^ip\.forbidden: /);
        const other = await request(app).post('/orders').set('Content-Type', 'application/json').send('{');
        expect(other.status).to.equal(599);
        expect(hostErrors).to.have.length(1);
      });
    });
  }
});
