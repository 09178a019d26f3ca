import { expect } from 'chai';
import request from 'supertest';
import { comparable, createApp, errorCode } from '../helpers/create-app';
import { expectNoEmit } from './helpers';

/** Sends the same urlencoded text as a GET query and as a POST form. */
async function both(text: string, status: number) {
  const { app, events } = createApp();
  const get = await request(app).get(`/impact/actions?${text}`);
  const form = await request(app).post('/impact/actions').type('form').send(text);
  expect([get.status, form.status], text).to.deep.equal([status, status]);
  return { get, form, events };
}

describe('hostile C: query string and urlencoded form', () => {
  describe('C22: duplicate money or identity keys get 400 in GET and form', () => {
    for (const text of [
      'ActionId=1&ActionId=2',
      'ActionId=1&Amount=1&Amount=9999',
      'ActionId=1&amount=1&AMOUNT=9999',
      'ActionId=1&sub_id1=a&SubId1=b',
    ]) {
      it(text, async () => {
        const { get, form, events } = await both(text, 400);
        expect(errorCode(get.text)).to.equal('field.duplicate');
        expect(errorCode(form.text)).to.equal('field.duplicate');
        expectNoEmit(events);
      });
    }
  });

  describe('C23: prototype keys are plain unknown fields and pollute nothing', () => {
    const keys = [
      '__proto__',
      '__proto__[x]',
      'constructor[prototype][x]',
      'constructor',
      'toString',
      'valueOf',
      'hasOwnProperty',
    ];
    for (const key of keys) {
      it(`"${key}" in GET, form and JSON`, async () => {
        const text = `ActionId=1&${encodeURIComponent(key)}=polluted`;
        const { events } = await both(text, 200);
        const { app, events: jsonEvents } = createApp();
        await request(app)
          .post('/impact/actions')
          .type('json')
          .send(`{"ActionId":"1",${JSON.stringify(key)}:"polluted"}`)
          .expect(200);
        for (const event of [...events.action, ...jsonEvents.action]) {
          expect(Object.getPrototypeOf(event)).to.equal(Object.prototype);
          expect(Object.getPrototypeOf(event.fields)).to.equal(null);
          expect(Object.hasOwn(event.raw, key)).to.equal(true);
          expect(event.raw[key]).to.equal('polluted');
          expect((event as unknown as Record<string, unknown>)['polluted']).to.equal(undefined);
        }
        expect(({} as Record<string, unknown>)['x']).to.equal(undefined);
      });
    }
  });

  describe('C24: brackets are literal keys, never structure', () => {
    for (const text of [
      'ActionId=1&a[b]=1',
      'ActionId=1&a[]=1',
      `ActionId=1&${'a[x]'.repeat(40)}=1`,
      'ActionId=1&a[999999]=x',
    ]) {
      it(text.slice(0, 40), async () => {
        const { events } = await both(text, 200);
        const key = decodeURIComponent(text.split('&')[1]?.split('=')[0] ?? '');
        expect(events.action[0]?.raw[key]).to.not.equal(undefined);
      });
    }
  });

  describe('C25: percent-encoding edge cases', () => {
    for (const text of [
      'ActionId=%E0%A4%A',
      'ActionId=1%00',
      'ActionId=%C0%AE',
      'ActionId=1&Payout=%2B5',
      'ActionId=1&CampaignName=%ED%A0%80',
    ]) {
      it(`refuses ${text} in GET and form alike`, async () => {
        const { get, form, events } = await both(text, 400);
        expect(errorCode(get.text)).to.equal('field.invalid');
        expect(form.text).to.equal(get.text);
        expectNoEmit(events);
      });
    }

    it('decodes + as a space and %2B as + the same way in GET and form, with one dedupe key', async () => {
      const text = 'ActionId=1&SubId1=a+b%2Bc&EventDate=2024-09-10T10:42:38+02:00';
      const { events } = await both(text, 200);
      expect(events.action).to.have.length(1);
      expect(events.duplicate).to.have.length(1);
      expect(events.action[0]?.subId1).to.equal('a b+c');
      expect(events.action[0]?.eventDate?.toISOString()).to.equal('2024-09-10T08:42:38.000Z');
      expect(comparable(events.duplicate[0])).to.deep.equal(comparable(events.action[0]));
    });
  });
});
