import { expect } from 'chai';
import express from 'express';
import request from 'supertest';
import { comparable, createApp, errorCode } from './helpers/create-app';
import { HOST_RUNS_EXPRESS_MIDDLEWARE } from './helpers/hosts';
import { CATALOG, encode, FORMATS, INQUIRY, toQuery, toXml, TRACKED_ACTION } from './helpers/fixtures';
import { send, sendBytes } from './helpers/send';

const ROUTES = [
  { path: '/impact/actions', fields: TRACKED_ACTION, event: 'action' },
  { path: '/impact/clearing', fields: TRACKED_ACTION, event: 'action' },
  { path: '/impact/inquiries', fields: INQUIRY, event: 'inquiry' },
  { path: '/impact/catalog', fields: CATALOG, event: 'catalog' },
] as const;

describe('content negotiation', () => {
  for (const route of ROUTES) {
    describe(`on ${route.path}`, () => {
      for (const format of FORMATS) {
        it(`accepts a ${format} postback and emits one ${route.event} event`, async () => {
          const { app, events } = createApp();
          await send(app, route.path, format, route.fields).expect(200, 'OK');
          expect(events[route.event]).to.have.length(1);
          expect(events[route.event][0]?.meta.format).to.equal(format);
          expect(events.rejected).to.deep.equal([]);
        });
      }

      it('emits deep-equal events with one dedupe key for GET, JSON, XML and form', async () => {
        const seen: unknown[] = [];
        const keys = new Set<string>();
        for (const format of FORMATS) {
          const { app, events } = createApp();
          await send(app, route.path, format, route.fields).expect(200);
          const [event] = events[route.event];
          expect(event, format).to.not.equal(undefined);
          if (event === undefined) return;
          seen.push(comparable(event));
          keys.add(event.meta.key);
        }
        for (const event of seen.slice(1)) expect(event).to.deep.equal(seen[0]);
        expect(keys.size).to.equal(1);
      });
    });
  }

  describe('when the POST body has no usable Content-Type', () => {
    const cases = [
      { name: 'JSON', body: JSON.stringify(TRACKED_ACTION), format: 'json' },
      { name: 'XML', body: toXml(TRACKED_ACTION), format: 'xml' },
      { name: 'a form', body: toQuery(TRACKED_ACTION), format: 'form' },
    ] as const;
    for (const { name, body, format } of cases) {
      it(`sniffs ${name} sent as text/plain`, async () => {
        const { app, events } = createApp();
        await request(app).post('/impact/actions').set('Content-Type', 'text/plain').send(body).expect(200);
        expect(events.action[0]?.meta.format).to.equal(format);
      });

      it(`sniffs ${name} sent with no Content-Type`, async () => {
        const { app, events } = createApp();
        await sendBytes(app, '/impact/actions', null, Buffer.from(body)).expect(200);
        expect(events.action[0]?.meta.format).to.equal(format);
      });
    }
  });

  it('answers 415 naming the accepted types for any other Content-Type, before reading', async () => {
    const { app, events } = createApp();
    const res = await request(app)
      .post('/impact/actions')
      .set('Content-Type', 'application/octet-stream')
      .send(Buffer.from('ActionId=1'))
      .expect(415);
    expect(res.text).to.match(/^content_type\.unsupported: .*application\/json.*application\/xml.*text\/xml/);
    expect(events.action).to.deep.equal([]);
    expect(events.rejected[0]).to.include({ code: 'content_type.unsupported', status: 415, path: '/impact/actions' });
  });

  it('accepts +xml and +json media types', async () => {
    const { app, events } = createApp();
    await request(app)
      .post('/impact/actions')
      .set('Content-Type', 'application/atom+xml')
      .send(toXml({ ActionId: '1' }))
      .expect(200);
    await request(app)
      .post('/impact/actions')
      .set('Content-Type', 'application/vnd.impact+json')
      .send('{"ActionId":"2"}')
      .expect(200);
    expect(events.action.map((event) => event.meta.format)).to.deep.equal(['xml', 'json']);
  });

  it('answers 415 for a charset other than UTF-8', async () => {
    const { app, events } = createApp();
    const res = await request(app)
      .post('/impact/actions')
      .set('Content-Type', 'application/json; charset=koi8-r')
      .send('{"ActionId":"1"}')
      .expect(415);
    expect(errorCode(res.text)).to.equal('charset.unsupported');
    expect(events.action).to.deep.equal([]);
  });

  it('answers 400 for a body that is not valid UTF-8', async () => {
    const { app, events } = createApp();
    const bytes = Buffer.concat([Buffer.from('{"ActionId":"1","SubId1":"'), Buffer.from([0xff]), Buffer.from('"}')]);
    const res = await sendBytes(app, '/impact/actions', 'application/json', bytes).expect(400);
    expect(errorCode(res.text)).to.equal('body.invalid');
    expect(events.action).to.deep.equal([]);
  });

  it('merges fixed query parameters of a POST URL with the body', async () => {
    const { app, events } = createApp();
    await request(app).post('/impact/actions?source=impact').send({ ActionId: '1', Payout: '2.00' }).expect(200);
    expect(events.action[0]?.fields).to.deep.equal({ source: 'impact', actionId: '1', payout: '2.00' });
    expect(events.action[0]?.meta.format).to.equal('json');
  });

  it('takes a POST with an empty body and fields in the URL as a query postback', async () => {
    const { app, events } = createApp();
    await request(app).post('/impact/actions?ActionId=5').expect(200);
    expect(events.action[0]?.meta.format).to.equal('query');
  });

  describe('with the body limit', () => {
    it('answers 413 for a body one byte over the default 100kb, and emits nothing', async () => {
      const { app, events } = createApp();
      const body = JSON.stringify({ ActionId: '1', Pad: 'x'.repeat(102_400) });
      const res = await request(app)
        .post('/impact/actions')
        .set('Content-Type', 'application/json')
        .send(body)
        .expect(413);
      expect(errorCode(res.text)).to.equal('body.too_large');
      expect(events.action).to.deep.equal([]);
    });

    it('honours the limit option', async () => {
      const { app } = createApp({ limit: '1kb' });
      await request(app)
        .post('/impact/actions')
        .send({ ActionId: '1', Pad: 'x'.repeat(900) })
        .expect(200);
      await request(app)
        .post('/impact/actions')
        .send({ ActionId: '2', Pad: 'x'.repeat(1100) })
        .expect(413);
    });
  });

  // Only where Express middleware can run first: Fastify's plugin reads past the host's parsers,
  // and a Fetch body can be read once (test/hosts.test.ts has theirs).
  (HOST_RUNS_EXPRESS_MIDDLEWARE ? describe : describe.skip)('when the host app parsed the body already', () => {
    const parsers = [
      { name: 'express.json()', parser: express.json(), format: 'json' },
      { name: 'express.urlencoded()', parser: express.urlencoded({ extended: false }), format: 'form' },
      { name: 'express.text()', parser: express.text({ type: ['text/*', 'application/xml'] }), format: 'xml' },
    ] as const;
    for (const { name, parser, format } of parsers) {
      it(`uses what ${name} left in req.body`, async () => {
        const { app, events } = createApp({}, { before: [parser] });
        const { contentType, body } = encode(format, TRACKED_ACTION);
        await request(app)
          .post('/impact/actions')
          .set('Content-Type', contentType ?? '')
          .send(body ?? '')
          .expect(200);
        const reference = createApp();
        await send(reference.app, '/impact/actions', format, TRACKED_ACTION).expect(200);
        expect(events.action).to.have.length(1);
        const [event] = events.action;
        const [expected] = reference.events.action;
        if (event === undefined || expected === undefined) return;
        expect(comparable(event)).to.deep.equal(comparable(expected));
      });
    }

    it('refuses a key repeated in a form that express.urlencoded() turned into an array', async () => {
      const { app, events } = createApp({}, { before: [express.urlencoded({ extended: false })] });
      const res = await request(app)
        .post('/impact/actions')
        .type('form')
        .send('ActionId=1&Payout=1&Payout=9999')
        .expect(400);
      expect(errorCode(res.text)).to.equal('field.duplicate');
      expect(events.action).to.deep.equal([]);
    });
  });
});
