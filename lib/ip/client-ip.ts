import type { IpMatcher } from './allow-list';
import { normalizeIp } from './strict-ip';

/** How the client address is found: the socket alone, N trusted hops, or trusted proxy ranges. */
export type ProxyTrust =
  | { readonly kind: 'none' }
  | { readonly kind: 'hops'; readonly hops: number }
  | { readonly kind: 'ranges'; readonly isProxy: IpMatcher };

/**
 * The address the allow-list judges, or null when it cannot be known (a socket already closed
 * reports `remoteAddress` undefined; a forwarded entry that is not a canonical address).
 *
 * X-Forwarded-For is read from the right: each trusted proxy appends the address it saw, so
 * only the entries added by our own proxies are trustworthy; anything further left was written
 * by whoever connected first and may be forged.
 */
export function resolveClientIp(
  socketAddress: string | undefined,
  forwardedFor: string | readonly string[] | undefined,
  trust: ProxyTrust,
): string | null {
  // With trusted hops the peer's own address is never judged, only what the proxies forwarded:
  // a host that cannot give it (a Fetch host behind its platform's proxy) still finds the client.
  if (socketAddress === undefined && trust.kind !== 'hops') return null;
  const socketIp = socketAddress === undefined ? null : normalizeIp(socketAddress);
  if ((socketAddress !== undefined && socketIp === null) || trust.kind === 'none') return socketIp;

  // Node joins repeated X-Forwarded-For headers with ", ", so one list covers both shapes.
  const header = typeof forwardedFor === 'string' ? forwardedFor : (forwardedFor?.join(',') ?? '');
  const hops = header === '' ? [] : header.split(',').map((part) => part.trim());

  if (trust.kind === 'hops') {
    if (hops.length === 0) return socketIp;
    // The socket peer is hop 1; hop N's view of its client is the Nth entry from the right.
    const index = Math.max(hops.length - trust.hops, 0);
    const entry = hops[index];
    return entry === undefined ? null : normalizeIp(entry);
  }

  if (socketIp === null) return null;
  let current = socketIp;
  for (let index = hops.length - 1; index >= 0 && trust.isProxy(current); index -= 1) {
    const entry = hops[index];
    const next = entry === undefined ? null : normalizeIp(entry);
    if (next === null) return null;
    current = next;
  }
  return current;
}
