/**
 * npm run bench:console: every page of the console over a PostgresStore holding
 * BENCH_HISTORY_ENTRIES history entries (default 1,000,000, spread over the 30 days history keeps
 * by default: about 33,000 a day), timed over HTTP as a support agent's browser asks, 40 times
 * each after 3 unmeasured: the median and the 95th percentile. The goal: under 150 ms at p95.
 * Loopback PostgreSQL (DATABASE_URL) only.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import pg from 'pg';
import { createPostbackConsole, createPostbackRouter, PostgresStore } from '../dist';
import { DATABASE_URL } from '../test/helpers/services';
import { fillHistory, historyShape } from './history-fill';

const TOTAL = Number(process.env['BENCH_HISTORY_ENTRIES'] ?? 1_000_000);
const SPACING_MS = Math.floor((30 * 86_400_000) / TOTAL);
const CALLS = 40;
const WARM_UP = 3;

async function main(): Promise<void> {
  const schema = `bench_console_${process.pid}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  const store = new PostgresStore({ connectionString: DATABASE_URL, schema });
  const postbacks = createPostbackRouter({ allowedIps: ['127.0.0.1'], store, delivery: 'inbox', history: true });
  postbacks.on('action', (event) => {
    if (event.actionId.endsWith('.13')) throw new Error('the ledger refused it');
  });
  postbacks.on('error', () => undefined);
  const app = express();
  app.use('/impact', postbacks.router);
  app.use('/console', createPostbackConsole(postbacks, { authorize: () => true }));
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const seconds = await fillHistory(store.history, TOTAL, SPACING_MS);
    await admin.query(`ANALYZE "${schema}"."impact_postbacks_history"`);
    console.log(
      `PostgresStore: ${TOTAL.toLocaleString('en')} entries, ${SPACING_MS} ms apart, written in ${seconds.toFixed(1)} s`,
    );
    // A few rows in the inbox, some of them dead (maxAttempts is 12: they retry meanwhile).
    for (let n = 0; n < 30; n += 1) await fetch(`${base}/impact/actions?ActionId=6000.${n}&Status=PENDING&Payout=1.00`);
    const { actions, members } = historyShape(TOTAL);
    let k = 0;
    const pages: [string, () => string][] = [
      ['Overview', () => '/'],
      ['Postbacks (newest)', () => '/postbacks'],
      ['Postbacks by action', () => `/postbacks?actionId=5000.${(k += 7919) % actions}`],
      ['Postbacks by subId1', () => `/postbacks?subId1=member-${(k += 7919) % members}`],
      ['Postbacks refused', () => '/postbacks?outcome=rejected'],
      ['Action', () => `/actions/5000.${(k += 7919) % actions}`],
      ['Refused', () => '/refused'],
      ['Inbox', () => '/inbox'],
      ['Inbox, retrying rows', () => '/inbox?status=retrying'],
    ];
    console.log('| page | median (ms) | p95 (ms) |');
    console.log('| ---- | ----------: | -------: |');
    let worst = 0;
    for (const [name, path] of pages) {
      const times: number[] = [];
      for (let call = 0; call < WARM_UP + CALLS; call += 1) {
        const started = performance.now();
        const res = await fetch(`${base}/console${path()}`);
        await res.text();
        if (res.status !== 200) throw new Error(`${name}: ${res.status}`);
        if (call >= WARM_UP) times.push(performance.now() - started);
      }
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)] ?? 0;
      const p95 = times[Math.ceil(times.length * 0.95) - 1] ?? 0;
      worst = Math.max(worst, p95);
      console.log(`| ${name} | ${median.toFixed(1)} | ${p95.toFixed(1)} |`);
    }
    console.log(`slowest p95: ${worst.toFixed(1)} ms (${worst < 150 ? 'goal met' : 'goal not met'}: under 150 ms)`);
  } finally {
    server.close();
    await postbacks.close();
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin.end();
  }
}

void main();
