import { expect } from 'chai';
import fc from 'fast-check';
import ipRangeCheck from 'ip-range-check';
import { compileAllowList } from '../lib/ip/allow-list';
import { validateRangeEntry } from '../lib/ip/ip-ranges';

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((parts) => parts.join('.'));
const hextet = fc.integer({ min: 0, max: 0xffff }).map((value) => value.toString(16));
const ipv6 = fc.array(hextet, { minLength: 8, maxLength: 8 }).map((parts) => parts.join(':'));
const v4Range = fc.tuple(ipv4, fc.integer({ min: 1, max: 32 })).map(([address, bits]) => `${address}/${bits}`);
const v6Range = fc.tuple(ipv6, fc.integer({ min: 1, max: 128 })).map(([address, bits]) => `${address}/${bits}`);
/** Ranges as validation leaves them: canonical, host bits cleared. */
const ranges = fc.array(fc.oneof(v4Range, v6Range, ipv4, ipv6), { minLength: 1, maxLength: 5 }).map((list) =>
  list.map((entry) => {
    try {
      return validateRangeEntry('allowedIps', entry, 0);
    } catch (error) {
      const suggestion = /did you mean "([^"]+)"/.exec((error as Error).message)?.[1];
      if (suggestion === undefined) throw error;
      return suggestion;
    }
  }),
);

describe('compiled allow-list matcher', () => {
  it('agrees with ip-range-check on random addresses and ranges, IPv4-mapped clients included', () => {
    fc.assert(
      fc.property(
        ranges,
        fc.oneof(
          ipv4,
          ipv6,
          ipv4.map((address) => `::ffff:${address}`),
        ),
        (list, address) => {
          expect(compileAllowList(list)(address), `${address} in ${list.join(' ')}`).to.equal(
            ipRangeCheck(address, list),
          );
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('agrees for addresses inside a range, which random pairs rarely hit', () => {
    fc.assert(
      fc.property(ipv4, fc.integer({ min: 8, max: 32 }), (address, bits) => {
        const range = validateRangeEntry('allowedIps', `${address}/32`, 0).replace('/32', `/${bits}`);
        const network = range.split('/')[0] ?? '';
        const list = [
          (() => {
            try {
              return validateRangeEntry('allowedIps', range, 0);
            } catch (error) {
              return /did you mean "([^"]+)"/.exec((error as Error).message)?.[1] ?? network;
            }
          })(),
        ];
        expect(compileAllowList(list)(address)).to.equal(true);
        expect(ipRangeCheck(address, list)).to.equal(true);
        expect(compileAllowList(list)(`::ffff:${address}`)).to.equal(true);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses non-canonical forms that ip-range-check would read as another address', () => {
    const allow = compileAllowList(['8.1.2.3/32', '1.2.3.4/32']);
    for (const forged of ['010.1.2.3', '0x01.0x02.0x03.0x04', '16909060', '1.2.3.4:80'])
      expect(allow(forged), forged).to.equal(false);
    expect(ipRangeCheck('010.1.2.3', ['8.1.2.3/32'])).to.equal(true);
  });
});
