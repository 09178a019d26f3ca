import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { boundedMemo } from '../bounded-memo';

/**
 * Parses an address only in its canonical textual forms: dotted-quad IPv4 without leading zeros,
 * or IPv6. ipaddr.js on its own also accepts octal (`010.1.2.3` is 8.1.2.3), hex and 32-bit
 * integer IPv4 forms; taken from a forwarded header, those would let a forged value land inside
 * the allow-list, so they are refused here: Node's own `net.isIP` decides what is an address
 * (it takes no leading zeros, no hex and no short forms).
 */
export function parseStrictIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  switch (isIP(text)) {
    case 4:
      return ipaddr.IPv4.parse(text);
    case 6:
      return ipaddr.IPv6.isValid(text) ? ipaddr.IPv6.parse(text) : null;
    default:
      return null;
  }
}

/**
 * A client address, with an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack
 * listener reports for IPv4 clients) turned back into IPv4, or null if not a canonical address.
 */
export function parseClientIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const parsed = parseStrictIp(text);
  if (parsed !== null && parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (parsed as ipaddr.IPv6).toIPv4Address();
  }
  return parsed;
}

/**
 * Canonical text of a client address (see parseClientIp), or null if not an address. Every
 * postback from one sender carries the same socket address, so each is parsed once.
 */
export const normalizeIp: (text: string) => string | null = boundedMemo(
  1024,
  (text) => parseClientIp(text)?.toString() ?? null,
);
