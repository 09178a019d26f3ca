import { expect } from 'chai';
import request from 'supertest';
import { parseStrictIp } from '../lib/ip/strict-ip';
import { createApp, errorCode } from './helpers/create-app';
import { sendBytes } from './helpers/send';

describe('parsing rules found by public test corpora', () => {
  describe('Content-Type is read by the content-type package', () => {
    it('takes a quoted parameter holding ";charset=latin1" as JSON with no charset', async () => {
      const { app, events } = createApp();
      const res = await sendBytes(
        app,
        '/impact/actions',
        'application/json; foo="a;charset=latin1"',
        Buffer.from('{"ActionId":"1000.1.1","Payout":"1.00"}'),
      );
      expect(res.status).to.equal(200);
      expect(events.action[0]?.meta.format).to.equal('json');
    });

    it('still refuses a charset other than UTF-8, quoted or not, in any case', async () => {
      for (const type of ['application/json; charset=latin1', 'application/json; Charset="ISO-8859-1"']) {
        const { app, events } = createApp();
        const res = await sendBytes(app, '/impact/actions', type, Buffer.from('{"ActionId":"1"}'));
        expect(res.status, type).to.equal(415);
        expect(errorCode(res.text)).to.equal('charset.unsupported');
        expect(events.action).to.have.length(0);
      }
      const { app } = createApp();
      const utf8 = await sendBytes(
        app,
        '/impact/actions',
        'APPLICATION/JSON; CHARSET="UTF-8"',
        Buffer.from('{"ActionId":"1"}'),
      );
      expect(utf8.status).to.equal(200);
    });
  });

  describe('an empty body is empty or JSON whitespace after at most a BOM', () => {
    for (const body of ['', ' \t\r\n', '\uFEFF', '\uFEFF \n']) {
      it(`${JSON.stringify(body)} with a JSON type is empty: the URL's fields are the postback`, async () => {
        const { app, events } = createApp();
        const res = await sendBytes(app, '/impact/actions?ActionId=1000.2.1', 'application/json', Buffer.from(body));
        expect(res.status).to.equal(200);
        expect(events.action[0]?.meta.format).to.equal('query');
      });
    }
    for (const body of ['\f', '\v', '\u00A0', '\u2028', ' \f ']) {
      for (const type of ['application/json', 'application/xml']) {
        it(`${JSON.stringify(body)} with ${type} is not empty, and is refused as ${type.slice(12).toUpperCase()}`, async () => {
          const { app, events } = createApp();
          const res = await sendBytes(app, '/impact/actions?ActionId=1000.2.2', type, Buffer.from(body));
          expect(res.status).to.equal(400);
          expect(errorCode(res.text)).to.equal('body.invalid');
          expect(events.action).to.have.length(0);
        });
      }
    }
    it('a sniffed body (no type) of a form feed is read as a form, not taken as empty', async () => {
      const { app, events } = createApp();
      const res = await sendBytes(app, '/impact/actions?ActionId=1000.2.3', null, Buffer.from('\f'));
      expect(res.status).to.equal(200);
      expect(events.action[0]?.meta.format).to.equal('form');
      expect(Object.keys(events.action[0]?.raw ?? {})).to.include('\f');
    });
  });

  describe('addresses are canonical by net.isIP', () => {
    it('parses dotted quads and IPv6, and refuses leading zeros, hex, short and integer forms', () => {
      expect(parseStrictIp('192.0.2.1')?.toString()).to.equal('192.0.2.1');
      expect(parseStrictIp('::ffff:192.0.2.1')?.kind()).to.equal('ipv6');
      expect(parseStrictIp('2001:db8::1')?.toString()).to.equal('2001:db8::1');
      for (const text of [
        '010.0.2.1',
        '0x7f.0.0.1',
        '127.1',
        '2130706433',
        '192.0.2.1 ',
        '256.0.0.1',
        '',
        'localhost',
      ]) {
        expect(parseStrictIp(text), text).to.equal(null);
      }
    });

    it('does not let a forwarded octal address into the allow-list', async () => {
      const { app, events } = createApp({ allowedIps: ['8.1.2.3'], trustProxy: ['127.0.0.1', '::1'] });
      const res = await request(app).get('/impact/actions?ActionId=1').set('X-Forwarded-For', '010.1.2.3');
      expect(res.status).to.equal(403);
      expect(events.action).to.have.length(0);
    });
  });
});
