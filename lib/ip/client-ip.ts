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
  forwardedFor: string | string[] | undefined,
  trust: ProxyTrust,
): string | null {
  if (socketAddress === undefined) return null;
  const socketIp = normalizeIp(socketAddress);
  if (socketIp === null || trust.kind === 'none') return socketIp;

  // Node joins repeated X-Forwarded-For headers with ", ", so one list covers both shapes.
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '');
  const hops = header === '' ? [] : header.split(',').map((part) => part.trim());

  if (trust.kind === 'hops') {
    if (hops.length === 0) return socketIp;
    // The socket peer is hop 1; hop N's view of its client is the Nth entry from the right.
    const index = Math.max(hops.length - trust.hops, 0);
    const entry = hops[index];
    return entry === undefined ? null : normalizeIp(entry);
  }

  let current = socketIp;
  for (let index = hops.length - 1; index >= 0 && trust.isProxy(current); index -= 1) {
    const entry = hops[index];
    const next = entry === undefined ? null : normalizeIp(entry);
    if (next === null) return null;
    current = next;
  }
  return current;
}
