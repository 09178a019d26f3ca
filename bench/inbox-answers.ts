/**
 * The inbox's answer time in `npm run bench`: with delivery: 'inbox' on PostgresStore, 200
 * postbacks over 20 keep-alive connections (after 60 not measured), while each delivery's
 * listener takes 2 s. An arrival is answered once its row is stored, never after a listener:
 * the goal is a p99 of 100 ms or less. (The test suite proves the property itself, an answer
 * far below the listener's 2 s; the figure lives here, where a shared, noisy machine does not
 * fail a test run.) Skipped, and said so, without a PostgreSQL at DATABASE_URL.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import pg from 'pg';
import { createPostbackRouter, PostgresStore } from '../dist';
import { percentile, timeAnswers } from '../test/helpers/answer-times';
import { DATABASE_URL } from '../test/helpers/services';

export interface InboxAnswers {
  readonly answered: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly goalMet: boolean;
}

const GOAL_P99_MS = 100;
const CONNECTIONS = 20;

export async function runInboxAnswerBenchmark(): Promise<InboxAnswers | null> {
  const admin = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 2000 });
  admin.on('error', () => undefined);
  try {
    await admin.connect();
  } catch {
    console.log(`inbox answers: skipped (no PostgreSQL at ${DATABASE_URL})`);
    return null;
  }
  const schema = `bench_inbox_${process.pid}`;
  await admin.query(`CREATE SCHEMA "${schema}"`);
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 50 });
  pool.on('error', () => undefined);
  const postbacks = createPostbackRouter({
    allowedIps: ['127.0.0.1', '::1'],
    store: new PostgresStore({ pool, schema }),
    delivery: 'inbox',
    concurrency: 40,
  });
  postbacks.on('action', () => new Promise((resolve) => setTimeout(resolve, 2000)));
  const server = http.createServer(express().use('/impact', postbacks.router));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const base = `http://127.0.0.1:${port}`;
  const paths = (from: number, count: number): string[] =>
    Array.from(
      { length: count },
      (_, index) =>
        `/impact/actions?${new URLSearchParams({ ActionId: `2.${from + index}`, Status: 'PENDING', Payout: '5.00' }).toString()}`,
    );
  try {
    // Not measured: a new process's first requests wait for its code to compile and its
    // connections to open. Their deliveries run while the 200 are measured.
    await timeAnswers(base, paths(1000, 60), CONNECTIONS, agent);
    const times = await timeAnswers(base, paths(0, 200), CONNECTIONS, agent);
    times.sort((a, b) => a - b);
    const result = {
      answered: times.length,
      p50Ms: Number(percentile(times, 0.5).toFixed(1)),
      p99Ms: Number(percentile(times, 0.99).toFixed(1)),
      goalMet: percentile(times, 0.99) <= GOAL_P99_MS,
    };
    console.log(
      `inbox answers (PostgreSQL, ${CONNECTIONS} connections, listener 2 s): ${result.answered} answered, p50 ${result.p50Ms} ms, p99 ${result.p99Ms} ms (${result.goalMet ? 'goal met' : 'goal not met'}: p99 ${GOAL_P99_MS} ms or less)`,
    );
    return result;
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await postbacks.close({ timeoutMs: 5000 });
    await pool.end();
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin.end();
  }
}
