import { expect } from 'chai';
import request from 'supertest';
import { createApp, errorCode } from '../helpers/create-app';
import { expectNoEmit } from './helpers';

async function postJson(body: string) {
  const target = createApp();
  const res = await request(target.app).post('/impact/actions').set('Content-Type', 'application/json').send(body);
  return { res, ...target };
}

describe('hostile D: JSON bodies', () => {
  describe('D26: malformed JSON, trailing garbage, primitives and arrays get 400', () => {
    const bodies = [
      '{"ActionId":"1"',
      '{"ActionId":"1"} x',
      '{"ActionId":"1"}{}',
      '"ActionId"',
      '42',
      'null',
      '[{"ActionId":"1"}]',
      "{'ActionId':'1'}",
      '{"ActionId":"1",}',
      '{"ActionId":01}',
      '{"ActionId":"\u0001"}',
      '{"A":"\\x41"}',
    ];
    for (const body of bodies) {
      it(JSON.stringify(body), async () => {
        const { res, events } = await postJson(body);
        expect(res.status).to.equal(400);
        expect(errorCode(res.text)).to.equal('body.invalid');
        expectNoEmit(events);
      });
    }
  });

  it('D27: an empty body with a JSON type gets 400 missing fields', async () => {
    const { res, events } = await postJson('');
    expect(res.status).to.equal(400);
    expect(errorCode(res.text)).to.equal('field.missing');
    expectNoEmit(events);
  });

  describe('D28: duplicate keys get 400, as in XML and form', () => {
    for (const body of [
      '{"ActionId":"1","Payout":"1","Payout":"999"}',
      '{"ActionId":"1","Payout":"1","\\u0050ayout":"999"}',
      '{"ActionId":"1","x":{"a":1,"a":2}}',
    ]) {
      it(body, async () => {
        const { res, events } = await postJson(body);
        expect(res.status).to.equal(400);
        expect(errorCode(res.text)).to.equal('field.duplicate');
        expectNoEmit(events);
      });
    }
  });

  it('D29: 50,000 nested arrays inside the limit get a fast 400 and no RangeError', async () => {
    const body = `{"ActionId":"1","x":${'['.repeat(50_000)}${']'.repeat(50_000)}}`;
    const started = process.hrtime.bigint();
    const { res, events } = await postJson(body);
    expect(res.status).to.equal(400);
    expect(res.text).to.equal('body.invalid: invalid JSON: nested deeper than 16 levels');
    expect(Number(process.hrtime.bigint() - started) / 1e6).to.be.below(1000);
    expectNoEmit(events);
  });

  it('D30: a "__proto__" object leaves the event prototype intact', async () => {
    const { res, events } = await postJson('{"ActionId":"1","__proto__":{"isAdmin":true}}');
    expect(res.status).to.equal(200);
    const [event] = events.action;
    expect((event as unknown as Record<string, unknown>)['isAdmin']).to.equal(undefined);
    expect(Object.getPrototypeOf(event)).to.equal(Object.prototype);
    expect(event?.raw['__proto__']).to.deep.equal({ isAdmin: 'true' });
  });

  describe('D31: amount and payout edge values', () => {
    const values = [
      '""',
      '" 5"',
      '"1e3"',
      '"0x10"',
      '"NaN"',
      '"Infinity"',
      '"5,00"',
      '9007199254740993',
      '1e3',
      '[5]',
      '{"v":5}',
      'true',
      'false',
    ];
    for (const value of values) {
      const absent = value === '""';
      it(`Payout ${value} ${absent ? 'is absent' : 'gets 400'}`, async () => {
        const { res, events } = await postJson(`{"ActionId":"1","Payout":${value}}`);
        if (absent) {
          expect(res.status).to.equal(200);
          expect(events.action[0]).to.not.have.property('payout');
          return;
        }
        expect(res.status).to.equal(400);
        expect(errorCode(res.text)).to.equal('field.invalid');
        expectNoEmit(events);
      });
    }

    it('keeps "1.005" and a negative delta as exact strings', async () => {
      const { res, events } = await postJson('{"ActionId":"1","Payout":"1.005","DeltaPayout":-7.75}');
      expect(res.status).to.equal(200);
      expect(events.action[0]).to.include({ payout: '1.005', deltaPayout: '-7.75' });
    });
  });
});
