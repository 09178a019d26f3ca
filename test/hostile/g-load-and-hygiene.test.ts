import net from 'node:net';
import { expect } from 'chai';
import request from 'supertest';
import { createPostbackRouter } from '../../lib';
import { createApp } from '../helpers/create-app';
import { startServer } from '../helpers/server';

describe('hostile G: load, resources and error hygiene', () => {
  it('G59: a thousand idle keep-alive sockets do not stop a valid postback', async () => {
    const { app, events } = createApp();
    const server = await startServer(app, (http) => {
      http.keepAliveTimeout = 5000;
    });
    const idle: net.Socket[] = [];
    try {
      await Promise.all(
        Array.from(
          { length: 1000 },
          () =>
            new Promise<void>((resolve) => {
              const socket = net.connect(server.port, '127.0.0.1', () => resolve());
              socket.on('error', () => undefined);
              idle.push(socket);
            }),
        ),
      );
      await request(server.base).get('/impact/actions?ActionId=1').expect(200);
      expect(events.action).to.have.length(1);
    } finally {
      for (const socket of idle) socket.destroy();
      await server.close();
    }
  });

  describe('G60: error bodies hold no stack, path or allow-list, with NODE_ENV unset', () => {
    const cases = [
      ['/impact/actions?ActionId=1', { allowedIps: ['198.51.100.0/24'] }],
      ['/impact/actions?Payout=nope', {}],
      ['/impact/actions?ActionId=%00', {}],
    ] as const;
    for (const [path, options] of cases) {
      it(path, async () => {
        const saved = process.env['NODE_ENV'];
        delete process.env['NODE_ENV'];
        try {
          const { app } = createApp(options);
          for (const accept of ['text/plain', 'application/json', 'application/xml']) {
            const res = await request(app).get(path).set('Accept', accept);
            expect(res.status).to.be.within(400, 499);
            expect(res.text).to.not.match(/\bat \w|\.ts\b|\.js\b|node_modules|198\.51\.100|Error:/);
            expect(res.headers['x-powered-by']).to.equal(undefined);
          }
        } finally {
          if (saved !== undefined) process.env['NODE_ENV'] = saved;
        }
      });
    }
  });

  describe('G61: nothing a sender writes can split or flood a log line', () => {
    const hostile = ['a\r\nFAKE: 1', '\u001b[31mred', 'x'.repeat(10_000)];
    for (const value of hostile) {
      it(`a key or value like ${JSON.stringify(value.slice(0, 12))}`, async () => {
        const { app, events } = createApp({ token: 'secret-token-1' });
        const key = encodeURIComponent(value);
        const url = '/impact/actions?token=secret-token-1';
        await request(app).post(url).type('form').send(`ActionId=1&SubId1=${key}`).expect(400);
        await request(app).post(url).type('form').send(`ActionId=1&${key}=1&${key}=2`).expect(400);
        await request(app)
          .post('/impact/actions')
          .set('X-Postback-Token', 'wrong')
          .type('form')
          .send(`ActionId=1&${key}=1`)
          .expect(403);
        for (const rejection of events.rejected) {
          expect(rejection.message).to.not.match(/[\r\n\u001b]/);
          expect(rejection.message.length).to.be.below(300);
          expect(rejection.message).to.not.include('secret-token-1');
        }
        expect(events.rejected.map((rejection) => rejection.code)).to.deep.equal([
          'field.invalid',
          'field.duplicate',
          'token.invalid',
        ]);
      });
    }

    it('the token never appears in an event', async () => {
      const { app, events } = createApp({ token: 'secret-token-1' });
      await request(app).get('/impact/actions?ActionId=1&token=secret-token-1').expect(200);
      expect(JSON.stringify(events.action)).to.not.include('secret-token-1');
    });
  });

  describe('G62: body-limit typos fail at setup, never switching the limit off', () => {
    for (const limit of ['100 kilobytes', Number.NaN, '1gb', -1, '', 'kb', '1e3kb']) {
      it(`limit ${JSON.stringify(limit)}`, () => {
        expect(() => createPostbackRouter({ allowedIps: ['::1'], limit })).to.throw(TypeError, /option limit/);
      });
    }

    it("'100 kb' is read as 100 KiB and enforced", async () => {
      const { app } = createApp({ limit: '100 kb' });
      await request(app)
        .post('/impact/actions')
        .type('json')
        .send({ ActionId: '1', Pad: 'x'.repeat(102_400) })
        .expect(413);
    });
  });
});
