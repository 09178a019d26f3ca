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
import { createPostbackRouter, PostgresStore, SqliteStore, type PostbackHistory, type PostbackStore } from '../dist';
import { DATABASE_URL } from '../test/helpers/services';
import { fillHistory, historyShape } from './history-fill';

const TOTAL = Number(process.env['BENCH_HISTORY_ENTRIES'] ?? 1_000_000);
const CALLS = 25;
const { actions: ACTIONS, members: MEMBERS } = historyShape(TOTAL);

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
  const seconds = await fillHistory(log, TOTAL);
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
