import ipaddr from 'ipaddr.js';
import { parseStrictIp } from './strict-ip';

/**
 * Validates one allow-list or proxy entry (`192.0.2.10`, `192.0.2.0/24`, `2001:db8::/32`) and
 * returns it in canonical form. Every mistake that would silently never match, or match
 * everything, is a TypeError naming the option and the entry: ip-range-check itself quietly
 * returns false for a range with a space or a comma list, and `0.0.0.0/0` admits the world.
 */
export function validateRangeEntry(option: string, entry: unknown, index: number): string {
  const where = `option ${option}[${index}]`;
  if (typeof entry !== 'string') {
    throw new TypeError(`${where} must be a string such as "192.0.2.0/24", got ${describe(entry)}`);
  }
  if (entry.trim() !== entry || entry === '') {
    throw new TypeError(`${where} "${entry}" has surrounding spaces or is empty`);
  }
  if (/[,\s;]/.test(entry)) {
    throw new TypeError(`${where} "${entry}" holds several entries; pass each as its own array item`);
  }
  const slash = entry.indexOf('/');
  const addressText = slash === -1 ? entry : entry.slice(0, slash);
  const address = parseStrictIp(addressText);
  if (address === null) {
    throw new TypeError(`${where} "${entry}" is not an IPv4 or IPv6 address or CIDR range`);
  }
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    // ip-range-check turns mapped client addresses into IPv4 before matching, so a mapped
    // range would never match anything.
    throw new TypeError(`${where} "${entry}" is an IPv4-mapped IPv6 address; write the IPv4 form instead`);
  }
  const maxBits = address.kind() === 'ipv4' ? 32 : 128;
  if (slash === -1) return address.toString();

  const bitsText = entry.slice(slash + 1);
  if (!/^(?:0|[1-9]\d{0,2})$/.test(bitsText) || Number(bitsText) > maxBits) {
    throw new TypeError(`${where} "${entry}" has an invalid prefix length`);
  }
  const bits = Number(bitsText);
  if (bits === 0) {
    throw new TypeError(`${where} "${entry}" would allow every address; list the sender's ranges instead`);
  }
  const network = networkAddress(address, bits);
  if (network.toString() !== address.toString()) {
    throw new TypeError(`${where} "${entry}" has host bits set; did you mean "${network.toString()}/${bits}"?`);
  }
  return `${address.toString()}/${bits}`;
}

function networkAddress(address: ipaddr.IPv4 | ipaddr.IPv6, bits: number): ipaddr.IPv4 | ipaddr.IPv6 {
  const text = `${address.toString()}/${bits}`;
  return address.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(text)
    : ipaddr.IPv6.networkAddressFromCIDR(text);
}

export function validateRangeList(option: string, value: unknown): readonly string[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`option ${option} must be an array of IP addresses or CIDR ranges, got ${describe(value)}`);
  }
  if (value.length === 0) {
    throw new TypeError(`option ${option} is empty: no sender could ever be admitted`);
  }
  return Object.freeze(value.map((entry: unknown, index) => validateRangeEntry(option, entry, index)));
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `"${value}"` : typeof value;
}
