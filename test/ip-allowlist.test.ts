import type { AddressInfo } from 'node:net';
import http from 'node:http';
import { expect } from 'chai';
import request from 'supertest';
import { compileAllowList } from '../lib/ip/allow-list';
import { resolveClientIp, type ProxyTrust } from '../lib/ip/client-ip';
import { createApp, errorCode } from './helpers/create-app';

const ACTION = '/impact/actions?ActionId=1';

/** Listens on `host`, runs `body` with the base URL, always closes. */
async function withServer(
  app: http.RequestListener,
  host: string,
  body: (base: string) => Promise<void>,
): Promise<void> {
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  try {
    await body(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('IP allow-list', () => {
  it('admits an allowed IPv4 client and refuses others with 403, emitting rejected', async () => {
    const allowed = createApp({ allowedIps: ['127.0.0.0/8'] });
    await request(allowed.app).get(ACTION).expect(200);
    const refused = createApp({ allowedIps: ['192.0.2.0/24'] });
    const res = await request(refused.app).get(ACTION).expect(403);
    expect(res.text).to.equal('ip.forbidden: this address may not send postbacks');
    expect(refused.events.action).to.deep.equal([]);
    expect(refused.events.rejected).to.deep.equal([
      {
        code: 'ip.forbidden',
        status: 403,
        message: 'this address may not send postbacks',
        ip: '127.0.0.1',
        method: 'GET',
        path: '/impact/actions',
      },
    ]);
  });

  it('takes a new list from setAllowedIps() without a restart; a list with a mistake throws, naming it, and the old one stays', async () => {
    const { app, postbacks } = createApp({ allowedIps: ['192.0.2.0/24'] });
    await request(app).get(ACTION).expect(403);
    postbacks.setAllowedIps(['192.0.2.0/24', '127.0.0.1']);
    await request(app).get(ACTION).expect(200);
    for (const bad of [['127.0.0.0/33'], [], ['127.0.0.1', 'localhost'], '127.0.0.1']) {
      expect(() => postbacks.setAllowedIps(bad as string[])).to.throw(TypeError, /option allowedIps/);
    }
    await request(app).get('/impact/actions?ActionId=2').expect(200);
    postbacks.setAllowedIps(['192.0.2.0/24']);
    await request(app).get('/impact/actions?ActionId=3').expect(403);
  });

  it('refuses before reading the body, and closes the connection instead of draining it', async () => {
    const { app, events } = createApp({ allowedIps: ['192.0.2.1'] });
    const res = await request(app).post('/impact/actions').send({ ActionId: '1' }).expect(403);
    expect(res.headers['connection']).to.equal('close');
    expect(events.rejected[0]?.code).to.equal('ip.forbidden');
  });

  it('admits an IPv4 client seen as ::ffff:a.b.c.d by a dual-stack listener', async function () {
    const { app, events } = createApp({ allowedIps: ['127.0.0.1'] });
    try {
      await withServer(app, '::', async (base) => {
        const ipv4Base = base.replace(/\[::\]/, '127.0.0.1');
        await request(ipv4Base).get(ACTION).expect(200);
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAFNOSUPPORT') this.skip();
      throw error;
    }
    expect(events.action[0]?.meta.ip).to.equal('127.0.0.1');
  });

  it('admits an IPv6 client in an IPv6 range and refuses it outside', async function () {
    const inside = createApp({ allowedIps: ['::1/128'] });
    const outside = createApp({ allowedIps: ['2001:db8::/32'] });
    try {
      await withServer(inside.app, '::1', async (base) => {
        await request(base).get(ACTION).expect(200);
      });
      await withServer(outside.app, '::1', async (base) => {
        await request(base).get(ACTION).expect(403);
      });
    } catch (error) {
      if (['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes(String((error as NodeJS.ErrnoException).code))) this.skip();
      throw error;
    }
    expect(inside.events.action[0]?.meta.ip).to.equal('::1');
  });

  describe('X-Forwarded-For', () => {
    it('is ignored when no proxy is trusted (the default)', async () => {
      const { app, events } = createApp({ allowedIps: ['192.0.2.10'] });
      await request(app).get(ACTION).set('X-Forwarded-For', '192.0.2.10').expect(403);
      expect(events.rejected[0]?.ip).to.equal('127.0.0.1');
    });

    describe('with trustProxy as proxy addresses', () => {
      const options = { allowedIps: ['192.0.2.0/24'], trustProxy: ['127.0.0.1', '::1'] };

      it('admits the client our proxy saw', async () => {
        const { app, events } = createApp(options);
        await request(app).get(ACTION).set('X-Forwarded-For', '192.0.2.10').expect(200);
        expect(events.action[0]?.meta.ip).to.equal('192.0.2.10');
      });

      it('takes the rightmost untrusted entry, so a forged leftmost entry does not get in', async () => {
        const { app, events } = createApp(options);
        await request(app).get(ACTION).set('X-Forwarded-For', '192.0.2.10, 203.0.113.7').expect(403);
        expect(events.rejected[0]?.ip).to.equal('203.0.113.7');
      });

      it('reads repeated X-Forwarded-For headers as one chain', async () => {
        const { app } = createApp(options);
        await withServer(app, '127.0.0.1', async (base) => {
          const status = await new Promise<number>((resolve, reject) => {
            const req = http.get(
              `${base}${ACTION}`,
              { headers: { 'X-Forwarded-For': ['192.0.2.10', '203.0.113.7'] } },
              (res) => {
                res.resume();
                resolve(res.statusCode ?? 0);
              },
            );
            req.on('error', reject);
          });
          expect(status).to.equal(403);
        });
      });

      it('admits an IPv4-mapped address in a trusted header', async () => {
        const { app, events } = createApp(options);
        await request(app).get(ACTION).set('X-Forwarded-For', '0:0:0:0:0:ffff:192.0.2.10').expect(200);
        expect(events.action[0]?.meta.ip).to.equal('192.0.2.10');
      });

      it('refuses an IPv4-mapped address outside the list, in either spelling', async () => {
        const { app, events } = createApp(options);
        for (const mapped of ['::ffff:203.0.113.7', '0:0:0:0:0:ffff:203.0.113.7', '::ffff:cb00:7107']) {
          const res = await request(app).get(ACTION).set('X-Forwarded-For', mapped).expect(403);
          expect(errorCode(res.text), mapped).to.equal('ip.forbidden');
        }
        expect(events.rejected.map((rejection) => rejection.ip)).to.deep.equal(Array(3).fill('203.0.113.7'));
        expect(events.action).to.deep.equal([]);
      });

      for (const forged of ['0300.0.2.10', '0xC0.0.2.10', '3221225994', '192.0.2.10:80', '[::1]', 'garbage', '']) {
        it(`refuses the non-canonical address "${forged}"`, async () => {
          const { app, events } = createApp(options);
          await request(app).get(ACTION).set('X-Forwarded-For', forged).expect(403);
          expect(events.action).to.deep.equal([]);
        });
      }
    });

    describe('with trustProxy as a hop count', () => {
      it('takes the entry that many hops from the right', async () => {
        const { app, events } = createApp({ allowedIps: ['192.0.2.0/24'], trustProxy: 2 });
        await request(app).get(ACTION).set('X-Forwarded-For', '198.51.100.1, 192.0.2.10, 10.0.0.5').expect(200);
        expect(events.action[0]?.meta.ip).to.equal('192.0.2.10');
      });
    });
  });

  describe('resolveClientIp', () => {
    const none: ProxyTrust = { kind: 'none' };
    const proxies: ProxyTrust = { kind: 'ranges', isProxy: compileAllowList(['10.0.0.0/8']) };
    const cases: [string | undefined, string | undefined, ProxyTrust, string | null][] = [
      [undefined, undefined, none, null],
      ['::ffff:192.0.2.1', undefined, none, '192.0.2.1'],
      ['10.0.0.5', '192.0.2.1, 10.0.0.6', proxies, '192.0.2.1'],
      ['10.0.0.5', undefined, proxies, '10.0.0.5'],
      ['203.0.113.9', '192.0.2.1', proxies, '203.0.113.9'],
      ['10.0.0.5', '010.0.0.1', proxies, null],
      ['10.0.0.5', '192.0.2.1', { kind: 'hops', hops: 5 }, '192.0.2.1'],
    ];
    for (const [socket, header, trust, expected] of cases) {
      it(`gives ${String(expected)} for socket ${String(socket)}, X-Forwarded-For ${String(header)}, ${trust.kind}`, () => {
        expect(resolveClientIp(socket, header, trust)).to.equal(expected);
      });
    }
  });
});

describe('token', () => {
  const TOKEN = 's3cret-token-value';

  it('admits a postback with the token in the query, and keeps it out of fields and raw', async () => {
    const { app, events } = createApp({ token: TOKEN });
    await request(app).get(`${ACTION}&token=${TOKEN}`).expect(200);
    expect(events.action[0]?.raw).to.deep.equal({ ActionId: '1' });
    expect(events.action[0]?.fields).to.deep.equal({ actionId: '1' });
  });

  it('admits a postback with the token in X-Postback-Token', async () => {
    const { app, events } = createApp({ token: TOKEN });
    await request(app).post('/impact/actions').set('X-Postback-Token', TOKEN).send({ ActionId: '1' }).expect(200);
    expect(events.action).to.have.length(1);
  });

  it('accepts any of several tokens while rotating', async () => {
    const { app, events } = createApp({ token: ['old-token', TOKEN] });
    await request(app).get(`${ACTION}&token=old-token`).expect(200);
    await request(app)
      .get('/impact/actions?ActionId=2&token=' + TOKEN)
      .expect(200);
    expect(events.action).to.have.length(2);
  });

  it('refuses a missing or wrong token with 403, never echoing it', async () => {
    const { app, events } = createApp({ token: TOKEN });
    const missing = await request(app).get(ACTION).expect(403);
    expect(errorCode(missing.text)).to.equal('token.missing');
    const wrong = await request(app).get(`${ACTION}&token=guess`).expect(403);
    expect(errorCode(wrong.text)).to.equal('token.invalid');
    // As long as the right one, one character off: the comparison is of the whole token.
    const sameLength = `${TOKEN.slice(0, -1)}${TOKEN.endsWith('e') ? 'f' : 'e'}`;
    const close = await request(app).get(`${ACTION}&token=${sameLength}`).expect(403);
    expect(errorCode(close.text)).to.equal('token.invalid');
    const header = await request(app).get(ACTION).set('X-Postback-Token', sameLength).expect(403);
    expect(errorCode(header.text)).to.equal('token.invalid');
    const mixed = await request(app).get(`${ACTION}&token=guess`).set('X-Postback-Token', TOKEN).expect(403);
    expect(errorCode(mixed.text)).to.equal('token.invalid');
    expect(events.action).to.deep.equal([]);
    expect(JSON.stringify(events.rejected)).to.not.include('guess');
  });

  it('is checked before the body is read', async () => {
    const { app } = createApp({ token: TOKEN });
    const res = await request(app).post('/impact/actions').send({ ActionId: '1' }).expect(403);
    expect(res.headers['connection']).to.equal('close');
  });
});
