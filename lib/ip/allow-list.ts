import ipRangeCheck from 'ip-range-check';
import { normalizeIp } from './strict-ip';

export type IpMatcher = (ip: string) => boolean;

/**
 * Compiles the validated allow-list into one matcher that fails closed. ip-range-check maps
 * `::ffff:a.b.c.d` to IPv4 before matching, so IPv4 ranges admit IPv4 clients seen by a
 * dual-stack listener; the address is canonicalised first so non-canonical forms never match.
 */
export function compileAllowList(ranges: readonly string[]): IpMatcher {
  const list = [...ranges];
  return function isAllowedIp(ip: string): boolean {
    const canonical = normalizeIp(ip);
    return canonical !== null && ipRangeCheck(canonical, list);
  };
}
