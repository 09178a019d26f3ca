import { expect } from 'chai';
import request from 'supertest';
import { createPostbackRouter, MemoryStore, type PostbackRouterOptions } from '../lib';
import { createApp } from './helpers/create-app';

/** Calls the factory with input the types would refuse, as JavaScript callers can. */
function create(options: unknown) {
  return createPostbackRouter(options as PostbackRouterOptions);
}

describe('options', () => {
  describe('allowedIps', () => {
    const bad: [string, unknown, RegExp][] = [
      ['missing', undefined, /option allowedIps is required/],
      ['not an array', '192.0.2.0/24', /option allowedIps must be an array/],
      ['empty', [], /option allowedIps is empty/],
      ['null entry', [null], /option allowedIps\[0\] must be a string.*null/],
      ['entry with spaces', [' 192.0.2.1'], /allowedIps\[0\] " 192.0.2.1" has surrounding spaces/],
      ['comma-joined entries', ['192.0.2.1,192.0.2.2'], /allowedIps\[0\] "192.0.2.1,192.0.2.2" holds several entries/],
      ['a typo', ['192.0.2.300'], /allowedIps\[0\] "192.0.2.300" is not an IPv4 or IPv6 address/],
      ['octal', ['010.0.0.1'], /allowedIps\[0\] "010.0.0.1" is not/],
      ['all of IPv4', ['0.0.0.0/0'], /allowedIps\[0\] "0.0.0.0\/0" would allow every address/],
      ['all of IPv6', ['::/0'], /allowedIps\[0\] "::\/0" would allow every address/],
      ['a bad prefix', ['192.0.2.0/33'], /invalid prefix length/],
      ['host bits set', ['192.0.2.99/24'], /host bits set; did you mean "192.0.2.0\/24"/],
      ['an IPv4-mapped range', ['::ffff:192.0.2.0/120'], /IPv4-mapped IPv6 address; write the IPv4 form/],
      ['a second bad entry', ['192.0.2.0/24', 'example.com'], /allowedIps\[1\] "example.com"/],
    ];
    for (const [name, allowedIps, message] of bad) {
      it(`throws a TypeError for ${name}`, () => {
        expect(() => create(allowedIps === undefined ? {} : { allowedIps })).to.throw(TypeError, message);
      });
    }

    it('takes IPv4 and IPv6 addresses and ranges', () => {
      expect(() => create({ allowedIps: ['192.0.2.1', '192.0.2.0/24', '2001:db8::/32', '::1'] })).to.not.throw();
    });
  });

  describe('trustProxy', () => {
    it('refuses true, naming the option', () => {
      expect(() => create({ allowedIps: ['::1'], trustProxy: true })).to.throw(
        TypeError,
        /option trustProxy: true is refused/,
      );
    });
    for (const value of [-1, 1.5, 'loopback', { a: 1 }]) {
      it(`refuses ${JSON.stringify(value)}`, () => {
        expect(() => create({ allowedIps: ['::1'], trustProxy: value })).to.throw(TypeError, /option trustProxy/);
      });
    }
    it('validates proxy entries like the allow-list', () => {
      expect(() => create({ allowedIps: ['::1'], trustProxy: ['0.0.0.0/0'] })).to.throw(
        TypeError,
        /option trustProxy\[0\]/,
      );
    });
  });

  describe('other options', () => {
    const bad: [string, Record<string, unknown>, RegExp][] = [
      [
        'an unknown option, with a suggestion',
        { allowedIp: ['::1'] },
        /unknown option "allowedIp"; did you mean "allowedIps"\?/,
      ],
      ['an unknown option', { allowedIps: ['::1'], colour: 'red' }, /unknown option "colour"$/],
      ['an empty token', { token: '' }, /option token must be a non-empty string/],
      ['a token with spaces', { token: ['ok-token', 'a b'] }, /option token\[1\] must be/],
      [
        'a field mapped to nothing known',
        { fields: { user: 'userId' } },
        /option fields\.user must name a known field/,
      ],
      ['a limit that does not parse', { limit: '100 kilobytes' }, /option limit "100 kilobytes" is invalid/],
      ['a NaN limit', { limit: Number.NaN }, /option limit null is invalid/],
      ['a huge limit', { limit: '1gb' }, /option limit "1gb" is invalid/],
      ['maxFields 0', { maxFields: 0 }, /option maxFields must be an integer from 1 to 1000/],
      [
        'a successResponse status that is not 2xx',
        { successResponse: { status: 302 } },
        /option successResponse\.status/,
      ],
      ['a body with 204', { successResponse: { status: 204, body: 'x' } }, /must be empty with status 204/],
      ['a listenerTimeout of 0', { listenerTimeout: 0 }, /option listenerTimeout must be an integer/],
      [
        'a store without begin (the interface of earlier versions)',
        { store: { claim() {}, commit() {}, release() {} } },
        /option store must be a store such as new MemoryStore\(\).*\(an object with a begin method\)/,
      ],
      ['an unknown ordering', { ordering: 'strict' }, /option ordering must be "final-states" or "none", got "strict"/],
    ];
    for (const [name, options, message] of bad) {
      it(`throw a TypeError for ${name}`, () => {
        expect(() => create({ allowedIps: ['::1'], ...options })).to.throw(TypeError, message);
      });
    }

    it('throw when the factory is used as middleware', () => {
      const fakeRequest = { headers: {}, socket: {}, method: 'GET' };
      expect(() => create(fakeRequest)).to.throw(TypeError, /was used as middleware/);
      expect(() => create(undefined)).to.throw(TypeError, /needs an options object/);
    });

    it('throw from MemoryStore for a bad size', () => {
      expect(() => new MemoryStore({ maxKeys: 0 })).to.throw(TypeError, /option maxKeys must be a positive integer/);
    });
  });

  describe("the caller's object", () => {
    it('is neither changed nor read again after setup', async () => {
      const allowedIps = ['127.0.0.1', '::1'];
      const options = Object.freeze({ allowedIps, limit: '1kb' });
      const { app, events } = createApp(options);
      allowedIps.length = 0;
      allowedIps.push('192.0.2.1');
      await request(app).get('/impact/actions?ActionId=1').expect(200);
      expect(events.action).to.have.length(1);
      expect(options).to.deep.equal({ allowedIps: ['192.0.2.1'], limit: '1kb' });
    });

    it('may have a null prototype', () => {
      const options = Object.assign(Object.create(null) as Record<string, unknown>, { allowedIps: ['::1'] });
      expect(() => create(options)).to.not.throw();
    });
  });
});
