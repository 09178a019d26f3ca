import { expect } from 'chai';
import request from 'supertest';
import { createApp } from './helpers/create-app';

describe('responses', () => {
  describe('negotiated by Accept', () => {
    const cases = [
      [undefined, 'text/plain; charset=utf-8', 'OK', 'field.missing: field "actionId" is missing or empty'],
      ['*/*', 'text/plain; charset=utf-8', 'OK', 'field.missing: field "actionId" is missing or empty'],
      [
        'application/json',
        'application/json; charset=utf-8',
        '{"ok":true}',
        '{"error":{"code":"field.missing","message":"field \\"actionId\\" is missing or empty"}}',
      ],
      [
        'application/xml',
        'application/xml; charset=utf-8',
        '<?xml version="1.0" encoding="UTF-8"?>\n<response><ok>true</ok></response>',
        '<?xml version="1.0" encoding="UTF-8"?>\n<error><code>field.missing</code><message>field &#34;actionId&#34; is missing or empty</message></error>',
      ],
      ['image/png', 'text/plain; charset=utf-8', 'OK', 'field.missing: field "actionId" is missing or empty'],
    ] as const;
    for (const [accept, type, success, failure] of cases) {
      it(`answers ${type} for Accept ${String(accept)}`, async () => {
        const { app } = createApp();
        const ok = request(app).get('/impact/actions?ActionId=1');
        const bad = request(app).get('/impact/actions?Payout=1');
        if (accept !== undefined) {
          ok.set('Accept', accept);
          bad.set('Accept', accept);
        }
        const okRes = await ok.expect(200).expect('Content-Type', type);
        expect(okRes.text).to.equal(success);
        const badRes = await bad.expect(400).expect('Content-Type', type);
        expect(badRes.text).to.equal(failure);
        expect(okRes.headers['cache-control']).to.equal('no-store');
        expect(badRes.headers['x-content-type-options']).to.equal('nosniff');
      });
    }
  });

  describe('with successResponse', () => {
    it('answers the exact status and body configured, for new and duplicate postbacks', async () => {
      const { app } = createApp({ successResponse: { status: 202, body: '<ack/>', contentType: 'text/xml' } });
      for (let i = 0; i < 2; i += 1) {
        await request(app)
          .get('/impact/actions?ActionId=1')
          .set('Accept', 'application/json')
          .expect(202, '<ack/>')
          .expect('Content-Type', 'text/xml');
      }
    });

    it('answers the configured status with a negotiated body when no body is set', async () => {
      const { app } = createApp({ successResponse: { status: 202 } });
      await request(app).get('/impact/actions?ActionId=1').set('Accept', 'application/json').expect(202, '{"ok":true}');
    });

    it('answers 204 with no body', async () => {
      const { app } = createApp({ successResponse: { status: 204 } });
      await request(app).get('/impact/actions?ActionId=1').expect(204, '');
    });
  });

  describe('methods', () => {
    for (const method of ['put', 'delete', 'patch', 'options'] as const) {
      it(`answers ${method.toUpperCase()} with 405 and Allow: GET, POST, emitting nothing`, async () => {
        const { app, events } = createApp();
        const res = await request(app)[method]('/impact/actions?ActionId=1').expect(405);
        expect(res.headers['allow']).to.equal('GET, POST');
        expect(events.action).to.deep.equal([]);
        expect(events.rejected[0]?.code).to.equal('method.not_allowed');
      });
    }

    it('never emits for HEAD, which Express would route to GET', async () => {
      const { app, events } = createApp();
      const res = await request(app).head('/impact/actions?ActionId=1').expect(405);
      expect(res.headers['allow']).to.equal('GET, POST');
      expect(events.action).to.deep.equal([]);
      await request(app).get('/impact/actions?ActionId=1').expect(200);
      expect(events.duplicate).to.deep.equal([]);
    });
  });

  it("answers unknown paths under the mount point with the host app's 404", async () => {
    const { app } = createApp();
    await request(app).get('/impact/nothing?ActionId=1').expect(404);
  });

  it('works under any mount path and reports that path', async () => {
    const { app, events } = createApp({}, { mountPath: '/hooks/impact-2024' });
    await request(app).get('/hooks/impact-2024/actions?ActionId=1').expect(200);
    expect(events.action[0]?.meta.path).to.equal('/hooks/impact-2024/actions');
  });

  it('never puts a stack trace, file path or the allow-list in an error body', async () => {
    const { app, postbacks } = createApp({}, { listen: false });
    postbacks.on('action', () => {
      throw new Error(`secret at ${__filename}`);
    });
    const failed = await request(app).get('/impact/actions?ActionId=1').expect(500);
    expect(failed.text).to.not.match(/secret|\.ts|at /);
    const refused = createApp({ allowedIps: ['192.0.2.0/24'] });
    const forbidden = await request(refused.app).get('/impact/actions?ActionId=1').expect(403);
    expect(forbidden.text).to.not.include('192.0.2');
  });
});
