/**
 * Fills a history log for the benchmarks at scale (bench/history-queries.ts, bench/console-pages.ts):
 * `total` entries of GET postbacks with 31 fields each, about 4 per action and 20 per subId1,
 * 3% refused and 5% duplicates, received `spacingMs` apart and ending a minute ago.
 */
import type { HistoryLog, NewHistoryEntry } from '../dist';
import { encode, TRACKED_ACTION } from '../test/helpers/fixtures';

export function historyShape(total: number): { readonly actions: number; readonly members: number } {
  return { actions: Math.max(1, Math.floor(total / 4)), members: Math.max(1, Math.floor(total / 20)) };
}

function entryAt(n: number, total: number, start: number, spacingMs: number): NewHistoryEntry {
  const { actions, members } = historyShape(total);
  const actionId = `5000.${n % actions}`;
  const subId1 = `member-${n % members}`;
  const refused = n % 33 === 0;
  // As the receiver hands it over: the query string as sent, which the log keeps in place of the fields.
  const query = encode('query', { ...TRACKED_ACTION, ActionId: actionId, SubId1: subId1 }).query.slice(1);
  const fields = Object.fromEntries(new URLSearchParams(query));
  return {
    trigger: 'postback',
    receivedAt: new Date(start + n * spacingMs),
    route: 'actions',
    format: 'query',
    ip: '192.0.2.10',
    path: '/impact/actions',
    outcome: refused ? 'rejected' : n % 20 === 0 ? 'duplicate' : 'delivered',
    status: refused ? 400 : 200,
    code: refused ? 'field.invalid' : null,
    durationMs: 1.5,
    key: refused ? null : `actions:${n.toString(36).padStart(43, '0')}`,
    subject: refused ? null : `action:${actionId}`,
    actionId,
    subId1,
    fields,
    sent: { query, body: null },
  };
}

/** Appends the entries, 10,000 at a time; resolves with the seconds it took. */
export async function fillHistory(log: HistoryLog, total: number, spacingMs = 1): Promise<number> {
  const started = performance.now();
  const start = Date.now() - total * spacingMs - 60_000;
  for (let n = 0; n < total; n += 10_000) {
    const writes: unknown[] = [];
    for (let i = n; i < Math.min(total, n + 10_000); i += 1)
      writes.push(log.append(entryAt(i, total, start, spacingMs)));
    await Promise.all(writes);
  }
  return (performance.now() - started) / 1000;
}
