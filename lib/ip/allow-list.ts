import ipaddr from 'ipaddr.js';
import { boundedMemo } from '../bounded-memo';
import { parseClientIp } from './strict-ip';

export type IpMatcher = (ip: string) => boolean;

/**
 * Compiles the validated allow-list into one matcher that fails closed. The ranges are parsed
 * once here: ip-range-check, which the matcher agrees with (test/ip-matcher.test.ts checks it
 * against ip-range-check on random input), re-parses the address and every range on each call,
 * which cost more than all the rest of the allow-list check together. Like ip-range-check, an
 * IPv4-mapped client (`::ffff:a.b.c.d`, what a dual-stack listener reports) matches its IPv4
 * range; the address must be canonical, so octal or hex forms never match.
 */
export function compileAllowList(ranges: readonly string[]): IpMatcher {
  const v4: [ipaddr.IPv4, number][] = [];
  const v6: [ipaddr.IPv6, number][] = [];
  for (const range of ranges) {
    const [address, bits] = range.includes('/') ? ipaddr.parseCIDR(range) : [ipaddr.parse(range), -1];
    const prefix = bits === -1 ? (address.kind() === 'ipv4' ? 32 : 128) : bits;
    if (address.kind() === 'ipv4') v4.push([address as ipaddr.IPv4, prefix]);
    else v6.push([address as ipaddr.IPv6, prefix]);
  }
  // The verdict for an address never changes, and postbacks come from a handful of addresses.
  return boundedMemo(1024, matches);

  function matches(ip: string): boolean {
    const parsed = parseClientIp(ip);
    if (parsed === null) return false;
    if (parsed.kind() === 'ipv4') {
      const address = parsed as ipaddr.IPv4;
      return v4.some(([network, bits]) => address.match(network, bits));
    }
    const address = parsed as ipaddr.IPv6;
    return v6.some(([network, bits]) => address.match(network, bits));
  }
}
