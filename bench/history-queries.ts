/**
 * History queries at scale (issue figures in bench/README.md): fills the history of a SqliteStore
 * and of a PostgresStore with BENCH_HISTORY_ENTRIES entries (default 1,000,000: about 4 per
 * action, 20 per subId1, 3% refused), then times `list` by action id, by subId1 and by outcome
 * (the newest 50), and `action(id)`, through a router as a user calls them: the median and the
 * slowest of 25 calls each. Prints the storage per entry. Loopback PostgreSQL (DATABASE_URL)
 * only; a store whose service does not answer is skipped.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  createPostbackRouter,
  PostgresStore,
  SqliteStore,
  type HistoryLog,
  type NewHistoryEntry,
  type PostbackHistory,
  type PostbackStore,
} from '../dist';
import { encode, TRACKED_ACTION } from '../test/helpers/fixtures';
import { DATABASE_URL } from '../test/helpers/services';

const TOTAL = Number(process.env['BENCH_HISTORY_ENTRIES'] ?? 1_000_000);
const CALLS = 25;
const ACTIONS = Math.max(1, Math.floor(TOTAL / 4));
const MEMBERS = Math.max(1, Math.floor(TOTAL / 20));

function entryAt(n: number, start: number): NewHistoryEntry {
  const actionId = `5000.${n % ACTIONS}`;
  const subId1 = `member-${n % MEMBERS}`;
  const refused = n % 33 === 0;
  const fields = Object.fromEntries(
    new URLSearchParams(encode('query', { ...TRACKED_ACTION, ActionId: actionId, SubId1: subId1 }).query.slice(1)),
  );
  return {
    trigger: 'postback',
    receivedAt: new Date(start + n),
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
  };
}

async function fill(log: HistoryLog): Promise<number> {
  const started = performance.now();
  const start = Date.now() - TOTAL - 60_000;
  for (let n = 0; n < TOTAL; n += 10_000) {
    const writes: unknown[] = [];
    for (let i = n; i < Math.min(TOTAL, n + 10_000); i += 1) writes.push(log.append(entryAt(i, start)));
    await Promise.all(writes);
  }
  return (performance.now() - started) / 1000;
}

async function timed(call: () => Promise<unknown>): Promise<{ median: number; max: number }> {
  const times: number[] = [];
  for (let i = 0; i < CALLS; i += 1) {
    const started = performance.now();
    await call();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(CALLS / 2)] ?? 0, max: times.at(-1) ?? 0 };
}

async function measure(name: string, store: PostbackStore<unknown>, bytes: () => Promise<number>): Promise<void> {
  const log = store.history;
  if (log === undefined) throw new Error(`${name} keeps no history`);
  const seconds = await fill(log);
  const postbacks = createPostbackRouter({ allowedIps: ['127.0.0.1'], store, history: true });
  const history = postbacks.history as PostbackHistory;
  let k = 0;
  const rows = [
    ['list by action', () => history.list({ actionId: `5000.${(k += 7919) % ACTIONS}` })],
    ['list by subId1', () => history.list({ subId1: `member-${(k += 7919) % MEMBERS}` })],
    ['list by outcome (rejected)', () => history.list({ outcome: 'rejected' })],
    [
      'list by outcome, second page',
      async () => {
        const first = await history.list({ outcome: 'duplicate' });
        return history.list({ outcome: 'duplicate', cursor: first.cursor ?? '1' });
      },
    ],
    ['action(id)', () => history.action(`5000.${(k += 7919) % ACTIONS}`)],
  ] as const;
  console.log(
    `${name}: ${TOTAL.toLocaleString('en')} entries written in ${seconds.toFixed(1)} s, ${Math.round((await bytes()) / TOTAL)} bytes per entry with its indexes`,
  );
  for (const [label, call] of rows) {
    const { median, max } = await timed(call);
    console.log(`  ${label.padEnd(30)} median ${median.toFixed(2)} ms, slowest ${max.toFixed(2)} ms`);
  }
  await postbacks.close();
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'impact-bench-history-'));
  try {
    const file = path.join(dir, 'history.db');
    const sqlite = new SqliteStore({ path: file });
    await measure('SqliteStore', sqlite, () => {
      const size = (suffix: string): number => {
        try {
          return statSync(file + suffix).size;
        } catch {
          return 0;
        }
      };
      return Promise.resolve(size('') + size('-wal'));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const schema = `bench_history_${process.pid}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2000 });
  try {
    await admin.connect();
  } catch {
    console.log(`PostgresStore: skipped (no PostgreSQL at ${DATABASE_URL})`);
    return;
  }
  try {
    await admin.query(`CREATE SCHEMA "${schema}"`);
    const store = new PostgresStore({ connectionString: DATABASE_URL, schema });
    await measure('PostgresStore', store, async () => {
      const { rows } = await admin.query<{ bytes: string }>(
        `SELECT pg_total_relation_size('"${schema}"."impact_postbacks_history"') AS bytes`,
      );
      return Number(rows[0]?.bytes ?? 0);
    });
  } finally {
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin.end();
  }
}

void main();
