/**
 * The stores section of `npm run bench`: GET postbacks through the router with each store, a
 * listener that does nothing, measured in interleaved slices as the HTTP comparison is; each
 * store's requests/s also as a ratio of MemoryStore's in the same run. A store whose service
 * (Redis at REDIS_URL, PostgreSQL at DATABASE_URL) does not answer is skipped, and the output
 * says so.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { DATABASE_URL, REDIS_URL, redisAnswers } from '../test/helpers/services';
import { combine, HTTP_SETTINGS, measureSlice, startTarget, type Measurement, type Slice } from './http';

export const STORES = ['memory', 'sqlite', 'redis', 'postgres', 'sqliteInbox', 'postgresInbox'] as const;
export type StoreName = (typeof STORES)[number];
export type StoreResults = Partial<Record<StoreName, Measurement & { ratio: number }>>;

async function withPostgres<T>(work: (client: pg.Client) => Promise<T>): Promise<T | null> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await work(client);
  } catch {
    return null;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Resolves once the server's inbox has nothing left to deliver (at once without an inbox), or after 10 s. */
async function drained(child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const count = await new Promise<number>((resolve) => {
      const answer = (message: { type?: string; count?: number }): void => {
        if (message.type !== 'waiting') return;
        child.off('message', answer);
        resolve(message.count ?? 0);
      };
      child.on('message', answer);
      child.send({ type: 'waiting' });
    });
    if (count === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function runStoreBenchmark(): Promise<StoreResults> {
  const skipped: string[] = [];
  const available: StoreName[] = ['memory', 'sqlite', 'sqliteInbox'];
  if (await redisAnswers(REDIS_URL)) available.push('redis');
  else skipped.push(`redis (no Redis at ${REDIS_URL})`);
  const schema = `bench_${process.pid}`;
  if ((await withPostgres((client) => client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`))) !== null) {
    available.push('postgres', 'postgresInbox');
  } else {
    skipped.push(`postgres and postgresInbox (no PostgreSQL at ${DATABASE_URL})`);
  }
  for (const line of skipped) console.log(`stores: skipped ${line}`);
  // BENCH_STORES=memory,sqlite measures those only.
  const chosen = process.env['BENCH_STORES']?.split(',');
  const stores = STORES.filter((store) => available.includes(store) && (chosen?.includes(store) ?? true));
  const dir = mkdtempSync(path.join(tmpdir(), 'impact-bench-stores-'));
  const env = { BENCH_DIR: dir, BENCH_SCHEMA: schema, REDIS_URL, DATABASE_URL };
  const servers = await Promise.all(
    stores.map(async (store) => [store, await startTarget('router', { ...env, STORE: store })] as const),
  );
  try {
    const slices = new Map<StoreName, Slice[]>();
    for (const [, { port }] of servers) await measureSlice(port, 'query', 1); // warm-up
    for (let round = 0; round < HTTP_SETTINGS.rounds; round += 1) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const [store, { port, child }] of order) {
        const slice = await measureSlice(port, 'query', HTTP_SETTINGS.secondsPerSlice);
        slices.set(store, [...(slices.get(store) ?? []), slice]);
        // An inbox delivers what it stored after its slice: let it, before the next store's
        // slice, so that its worker's work is not measured against another store.
        await drained(child);
      }
    }
    const measured = new Map(
      servers.map(([store, { port }]) => [store, combine(port, 'query', slices.get(store) ?? [])] as const),
    );
    const memoryRps = measured.get('memory')?.rps ?? 1;
    const results: StoreResults = {};
    for (const [store, measurement] of measured) {
      results[store] = { ...measurement, ratio: Number((measurement.rps / memoryRps).toFixed(3)) };
    }
    return results;
  } finally {
    for (const [, { child }] of servers) child.kill();
    rmSync(dir, { recursive: true, force: true });
    await withPostgres((client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  }
}

export function printStoreTable(results: StoreResults): void {
  const lines = ['| store | req/s | ratio to memory | p50 (ms) | p99 (ms) |', '| --- | ---: | ---: | ---: | ---: |'];
  for (const store of STORES) {
    const row = results[store];
    if (row === undefined) continue;
    lines.push(`| ${store} | ${row.rps} | ${row.ratio.toFixed(2)} | ${row.p50} | ${row.p99} |`);
  }
  console.log(lines.join('\n'));
}
