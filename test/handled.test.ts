import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import { SqliteStore, type HandledRequest } from '../lib';
import { createApp, LOOPBACK } from './helpers/create-app';
import { TRACKED_ACTION, toQuery } from './helpers/fixtures';

describe("the 'handled' event and X-Postback-Outcome", () => {
  function recorded(options: Parameters<typeof createApp>[0] = {}) {
    const test = createApp(options);
    const handled: HandledRequest[] = [];
    test.postbacks.on('handled', (info) => void handled.push(info));
    return { ...test, handled };
  }

  it('reports a delivery, a duplicate and a stale postback, each with its outcome header', async () => {
    const { app, handled } = recorded();
    const tracked = { ...TRACKED_ACTION, Status: 'APPROVED' };
    const first = await request(app)
      .get(`/impact/actions?${toQuery(tracked)}`)
      .expect(200);
    const copy = await request(app)
      .get(`/impact/actions?${toQuery(tracked)}`)
      .expect(200);
    const late = await request(app)
      .post('/impact/actions')
      .send({ ...tracked, Status: 'PENDING' })
      .expect(200);
    expect([first, copy, late].map((res) => res.headers['x-postback-outcome'])).to.deep.equal([
      'delivered',
      'duplicate',
      'stale',
    ]);
    expect(handled.map(({ durationMs: _ms, ...rest }) => rest)).to.deep.equal([
      { route: 'actions', format: 'query', status: 200, code: null, outcome: 'delivered', ip: '127.0.0.1' },
      { route: 'actions', format: 'query', status: 200, code: null, outcome: 'duplicate', ip: '127.0.0.1' },
      { route: 'actions', format: 'json', status: 200, code: null, outcome: 'stale', ip: '127.0.0.1' },
    ]);
    for (const info of handled) expect(info.durationMs).to.be.a('number').within(0, 5000);
  });

  it('reports refusals as rejected and failures as failed, with their codes', async () => {
    const { app, handled, postbacks } = recorded({ allowedIps: [...LOOPBACK] });
    postbacks.on('inquiry', () => {
      throw new Error('listener bug');
    });
    await request(app).post('/impact/actions').type('json').send('{"ActionId":').expect(400);
    await request(app).get('/impact/actions?Payout=1.00').expect(400);
    await request(app).get('/impact/inquiries?InquiryId=1000.1.1').expect(500);
    await request(app).put('/impact/catalog').expect(405);
    expect(handled.map(({ durationMs: _ms, ip: _ip, ...rest }) => rest)).to.deep.equal([
      { route: 'actions', format: null, status: 400, code: 'body.invalid', outcome: 'rejected' },
      { route: 'actions', format: 'query', status: 400, code: 'field.missing', outcome: 'rejected' },
      { route: 'inquiries', format: 'query', status: 500, code: 'listener.failed', outcome: 'failed' },
      { route: 'catalog', format: null, status: 405, code: 'method.not_allowed', outcome: 'rejected' },
    ]);
  });

  it('reports a refused address with its ip', async () => {
    const { app, handled } = recorded({ allowedIps: ['192.0.2.1'] });
    await request(app)
      .get(`/impact/actions?${toQuery(TRACKED_ACTION)}`)
      .expect(403);
    expect(handled).to.have.length(1);
    expect(handled[0]).to.include({ status: 403, code: 'ip.forbidden', outcome: 'rejected', format: null });
    expect(handled[0]?.ip).to.be.oneOf(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
  });

  it('reports a postback the inbox stored as stored, the worker delivering it afterwards', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'impact-handled-'));
    const { app, handled, postbacks, events } = recorded({
      store: new SqliteStore({ path: path.join(dir, 'inbox.db') }),
      delivery: 'inbox',
    });
    try {
      const res = await request(app)
        .get(`/impact/actions?${toQuery(TRACKED_ACTION)}`)
        .expect(200);
      expect(res.headers['x-postback-outcome']).to.equal('stored');
      expect(handled.map((info) => info.outcome)).to.deep.equal(['stored']);
      await postbacks.close();
      expect(events.action).to.have.length(1);
    } finally {
      await postbacks.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads no clock and builds no report with nobody listening, and answers the same', async () => {
    // History, on by default, times each entry: off here, nothing is left to time.
    const { app } = createApp({ history: false });
    // The router reads performance.now() only to time a report someone listens for.
    const now = performance.now.bind(performance);
    let clockReads = 0;
    performance.now = () => {
      clockReads += 1;
      return now();
    };
    try {
      const res = await request(app)
        .get(`/impact/actions?${toQuery(TRACKED_ACTION)}`)
        .expect(200);
      expect(res.headers['x-postback-outcome']).to.equal('delivered');
    } finally {
      Reflect.deleteProperty(performance, 'now');
    }
    expect(clockReads).to.equal(0);
  });
});
