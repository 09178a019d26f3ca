import { expect } from 'chai';
import request from 'supertest';
import { createPostbackRouter, type PostbackRouterOptions } from '../../lib';
import { createApp, errorCode } from '../helpers/create-app';
import { expectNoEmit } from './helpers';

const IMPACT = '198.51.100.0/24';
const IMPACT_IP = '198.51.100.7';
const VALID = '/impact/actions?ActionId=1&Payout=5.00';

describe('hostile A: source authentication', () => {
  describe('A1-A2, A4, A6: forged or foreign sources get 403 and nothing is emitted', () => {
    const cases: { name: string; options: Partial<PostbackRouterOptions>; forwarded?: string }[] = [
      { name: 'A1 disallowed socket address', options: { allowedIps: [IMPACT] } },
      {
        name: 'A2 X-Forwarded-For naming impact, no proxy trusted',
        options: { allowedIps: [IMPACT] },
        forwarded: IMPACT_IP,
      },
      {
        name: 'A4 trusted proxy, attacker-written leftmost entry',
        options: { allowedIps: [IMPACT], trustProxy: ['127.0.0.1', '::1'] },
        forwarded: `${IMPACT_IP}, 203.0.113.9`,
      },
      ...[
        '0306.0.2.10',
        '0xC6.51.100.7',
        '3325256711',
        `${IMPACT_IP}:80`,
        `[${IMPACT_IP}]`,
        'unknown',
        '198.51.100.7 x',
      ].map((forged) => ({
        name: `A6 non-canonical forwarded address "${forged}"`,
        options: { allowedIps: [IMPACT], trustProxy: ['127.0.0.1', '::1'] },
        forwarded: forged,
      })),
    ];
    for (const { name, options, forwarded } of cases) {
      it(name, async () => {
        const { app, events } = createApp(options);
        const req = request(app).post(VALID).send({ SubId1: 'x' });
        if (forwarded !== undefined) req.set('X-Forwarded-For', forwarded);
        const res = await req.expect(403);
        expect(errorCode(res.text)).to.equal('ip.forbidden');
        expect(res.text).to.not.include('198.51.100');
        expectNoEmit(events);
        expect(events.rejected.map((rejection) => rejection.code)).to.deep.equal(['ip.forbidden']);
      });
    }
  });

  describe('A3: a misconfigured trustProxy refuses to start', () => {
    for (const trustProxy of [true, ['0.0.0.0/0'], ['::/0'], 'loopback']) {
      it(`refuses trustProxy ${JSON.stringify(trustProxy)}`, () => {
        expect(() =>
          createPostbackRouter({ allowedIps: [IMPACT], trustProxy } as unknown as PostbackRouterOptions),
        ).to.throw(TypeError, /option trustProxy/);
      });
    }
  });

  describe('A5: an allowed IPv4 client in IPv4-mapped form is admitted exactly once', () => {
    for (const forwarded of [`::ffff:${IMPACT_IP}`, `0:0:0:0:0:ffff:${IMPACT_IP}`, '::FFFF:c633:6407']) {
      it(`admits ${forwarded} through a trusted proxy`, async () => {
        const { app, events } = createApp({ allowedIps: [IMPACT], trustProxy: ['127.0.0.1', '::1'] });
        await request(app).get(VALID).set('X-Forwarded-For', forwarded).expect(200);
        expect(events.action).to.have.length(1);
        expect(events.action[0]?.meta.ip).to.equal(IMPACT_IP);
      });
    }
  });

  describe('A8: a bad allow-list fails at setup', () => {
    const bad: unknown[] = [
      [' 198.51.100.0/24'],
      ['198.51.100.1,198.51.100.2'],
      [null],
      [],
      ['0.0.0.0/0'],
      ['::/0'],
      ['198.51.100/24'],
      null,
      'x',
    ];
    for (const allowedIps of bad) {
      it(`throws for ${JSON.stringify(allowedIps)}`, () => {
        expect(() => createPostbackRouter({ allowedIps } as unknown as PostbackRouterOptions)).to.throw(
          TypeError,
          /option allowedIps/,
        );
      });
    }
  });

  describe('A9: other methods never credit', () => {
    for (const method of ['head', 'put', 'delete', 'options'] as const) {
      it(`answers ${method.toUpperCase()} with 405`, async () => {
        const { app, events } = createApp();
        await request(app)[method](VALID).expect(405);
        expectNoEmit(events);
      });
    }
  });
});
