import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { expect } from 'chai';
import express from 'express';
import pg from 'pg';
import request from 'supertest';
import {
  createPostbackRouter,
  MemoryStore,
  PostgresStore,
  RedisStore,
  SqliteStore,
  type InboxStore,
  type PostbackError,
  type PostbackEvent,
  type PostbackRouter,
} from '../lib';
import { errorCode, LOOPBACK } from './helpers/create-app';
import { percentile, timeAnswers } from './helpers/answer-times';
import { startServer } from './helpers/server';
import { createTestSchema, DATABASE_URL, REDIS_URL, requirePostgres, type TestSchema } from './helpers/services';

const BIN = path.resolve(__dirname, '../dist/cli/main.js');

interface InboxKind {
  readonly name: string;
  readonly before?: (context: Mocha.Context) => Promise<void>;
  /** A store with an inbox of its own for one test; `pool` sizes PostgreSQL's connections. */
  readonly create: (settings?: { pool?: number }) => Promise<InboxStore<unknown>>;
  /** Where the CLI finds that store's inbox. */
  readonly cliArgs: () => string[];
  readonly after: () => Promise<void>;
}

function sqliteKind(): InboxKind {
  let dir = '';
  let file = '';
  const opened: SqliteStore[] = [];
  return {
    name: 'SqliteStore',
    create: async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'impact-inbox-'));
      file = path.join(dir, 'inbox.db');
      const store = new SqliteStore({ path: file });
      opened.push(store);
      return store;
    },
    cliArgs: () => ['--sqlite', file],
    after: async () => {
      for (const store of opened.splice(0)) store.close();
      if (dir !== '') await rm(dir, { recursive: true, force: true });
    },
  };
}

function postgresKind(): InboxKind {
  let schema: TestSchema | undefined;
  const opened: { store: PostgresStore; pool: pg.Pool | null }[] = [];
  return {
    name: 'PostgresStore',
    before: async (context) => requirePostgres(context),
    create: async (settings = {}) => {
      schema = await createTestSchema();
      const pool =
        settings.pool === undefined ? null : new pg.Pool({ connectionString: DATABASE_URL, max: settings.pool });
      pool?.on('error', () => undefined);
      const store =
        pool === null
          ? new PostgresStore({ connectionString: DATABASE_URL, schema: schema.name })
          : new PostgresStore({ pool, schema: schema.name });
      opened.push({ store, pool });
      return store;
    },
    cliArgs: () => ['--database-url', DATABASE_URL, '--schema', schema?.name ?? 'public'],
    after: async () => {
      for (const { store, pool } of opened.splice(0)) {
        await store.close();
        await pool?.end();
      }
      await schema?.drop();
      schema = undefined;
    },
  };
}

/** Waits until `check` holds, up to `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(20);
  }
}

function action(id: string, fields: Record<string, string> = {}): string {
  return `/impact/actions?${new URLSearchParams({ ActionId: id, Status: 'PENDING', Payout: '5.00', ...fields }).toString()}`;
}

describe('inbox delivery: options', () => {
  it('throws at setup for a store without an inbox, saying why', () => {
    expect(() => createPostbackRouter({ allowedIps: LOOPBACK, delivery: 'inbox' })).to.throw(
      TypeError,
      /option delivery: 'inbox' needs a store that keeps an inbox, SqliteStore or PostgresStore: an inbox must be durable \(MemoryStore forgets on restart\)/,
    );
    const redis = new RedisStore({ url: REDIS_URL });
    try {
      expect(() => createPostbackRouter({ allowedIps: LOOPBACK, delivery: 'inbox', store: redis })).to.throw(
        TypeError,
        /RedisStore cannot/,
      );
    } finally {
      void redis.close();
    }
    expect(() =>
      createPostbackRouter({ allowedIps: LOOPBACK, store: new MemoryStore(), delivery: 'later' as never }),
    ).to.throw(TypeError, /option delivery must be "direct" or "inbox"/);
  });

  it("refuses maxAttempts, backoff and concurrency without delivery: 'inbox'", () => {
    for (const option of [{ maxAttempts: 3 }, { backoff: { baseMs: 10 } }, { concurrency: 2 }]) {
      expect(() => createPostbackRouter({ allowedIps: LOOPBACK, ...option })).to.throw(
        TypeError,
        /applies only with delivery: 'inbox'/,
      );
    }
  });
});

for (const kind of [sqliteKind(), postgresKind()]) {
  describe(`inbox delivery on ${kind.name}`, function () {
    this.timeout(60_000);
    const routers: PostbackRouter<unknown>[] = [];

    before(async function () {
      await kind.before?.(this);
    });
    afterEach(async () => {
      for (const router of routers.splice(0)) await router.close({ timeoutMs: 2000 });
      await kind.after();
    });

    async function inboxApp(options: Record<string, unknown> = {}, pool?: number) {
      const store = await kind.create(pool === undefined ? {} : { pool });
      const postbacks = createPostbackRouter<unknown>({
        allowedIps: LOOPBACK,
        store,
        delivery: 'inbox',
        backoff: { baseMs: 20, maxMs: 100 },
        ...options,
      });
      routers.push(postbacks);
      const errors: PostbackError[] = [];
      postbacks.on('error', (error) => void errors.push(error));
      const app = express();
      app.use('/impact', postbacks.router);
      const inbox = postbacks.inbox;
      if (inbox === null) throw new Error('no inbox');
      return { app, postbacks, store, errors, inbox };
    }

    it('stores a postback, answers 2xx at once, delivers it with (event, ctx), and stores a copy once', async () => {
      const { app, postbacks, inbox } = await inboxApp();
      const seen: [PostbackEvent, unknown][] = [];
      postbacks.on('action', (event, ctx) => void seen.push([event, ctx.previous]));
      await request(app).get(action('1.1')).expect(200, 'OK');
      await request(app).get(action('1.1')).expect(200, 'OK');
      await until(() => seen.length === 1);
      const [[event, previous]] = seen as [[PostbackEvent, unknown]];
      expect(event.kind === 'action' && event.actionId).to.equal('1.1');
      expect(event.meta.format).to.equal('query');
      expect(event.meta.ip).to.equal('127.0.0.1');
      expect(previous).to.equal(null);
      await until(async () => (await inbox.stats()).delivered === 1);
      const rows = await inbox.list();
      expect(rows).to.have.length(1);
      expect(rows[0]).to.include({ status: 'delivered', attempts: 1, outcome: 'delivered', lastError: null });
      expect(rows[0]?.event?.meta.key).to.equal(event.meta.key);
      expect(await inbox.stats()).to.deep.equal({
        pending: 0,
        retrying: 0,
        dead: 0,
        delivered: 1,
        oldestPendingAgeMs: null,
      });
    });

    it('answers 200 postbacks over 20 connections while each listener takes 2 s, none waiting for a listener, and delivers them all', async () => {
      const { app, postbacks, inbox } = await inboxApp({ concurrency: 40 }, 50);
      let delivered = 0;
      postbacks.on('action', async () => {
        await sleep(2000);
        delivered += 1;
      });
      const server = await startServer(app);
      try {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
        const paths = (from: number, count: number) =>
          Array.from({ length: count }, (_, index) => action(`2.${from + index}`));
        // Warm-up over the same 20 connections, not measured: the first requests of a new process
        // wait for its code to be compiled and its connections to be made (p99 110-150 ms then).
        // Their deliveries are running while the 200 are measured.
        await timeAnswers(server.base, paths(1000, 60), 20, agent);
        const times = await timeAnswers(server.base, paths(0, 200), 20, agent);
        agent.destroy();
        times.sort((a, b) => a - b);
        const p99 = percentile(times, 0.99);
        console.log(`      answers: ${times.length}, p50 ${times[99]?.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
        // Each answer comes once its row is stored, long before any listener's 2 s are over (the
        // 100 ms goal for the p99 is measured by npm run bench, not on a shared test machine).
        expect(p99).to.be.below(1000);
        // A row is marked delivered by the commit after its listener resolves: wait for both.
        await until(async () => delivered === 260 && (await inbox.stats()).delivered === 260, 30_000);
        expect(delivered).to.equal(260);
        expect((await inbox.stats()).delivered).to.equal(260);
      } finally {
        await server.close();
      }
    });

    it('retries a listener that fails twice: delivered once, on the third attempt, with two error events', async () => {
      const { app, postbacks, inbox, errors } = await inboxApp();
      let calls = 0;
      let done = 0;
      postbacks.on('action', () => {
        calls += 1;
        if (calls <= 2) throw new Error(`failure ${calls}`);
        done += 1;
      });
      await request(app).get(action('3.1')).expect(200);
      await until(() => done === 1);
      await until(async () => (await inbox.stats()).delivered === 1);
      await sleep(200);
      expect(calls).to.equal(3);
      const [row] = await inbox.list();
      expect(row).to.include({ status: 'delivered', attempts: 3, lastError: null });
      expect(
        errors.filter((error) => error.code === 'listener.failed' && error.message.startsWith('a "action"')),
      ).to.have.length(2);
    });

    it('makes a row dead after maxAttempts, emits dead once, and inbox.retry() delivers it once after the fix', async () => {
      const { app, postbacks, inbox } = await inboxApp({ maxAttempts: 3 });
      let broken = true;
      let delivered = 0;
      const dead: [PostbackEvent | null, PostbackError][] = [];
      postbacks.on('dead', (event, error) => void dead.push([event, error]));
      postbacks.on('action', () => {
        if (broken) throw new Error('the payment service is down');
        delivered += 1;
      });
      await request(app).get(action('4.1')).expect(200);
      await until(() => dead.length === 1);
      await sleep(200);
      expect(dead).to.have.length(1);
      expect(dead[0]?.[0]?.kind === 'action' && dead[0][0].actionId).to.equal('4.1');
      expect(dead[0]?.[1].code).to.equal('listener.failed');
      const [row] = await inbox.list({ status: 'dead' });
      expect(row).to.include({ status: 'dead', attempts: 3 });
      expect(row?.lastError).to.equal('the postback could not be handled; retry later');
      expect(await inbox.stats()).to.include({ dead: 1, pending: 0, retrying: 0 });
      broken = false;
      expect(await inbox.retry({ status: 'dead' })).to.equal(1);
      await until(() => delivered === 1);
      await sleep(200);
      expect(delivered).to.equal(1);
      expect(await inbox.stats()).to.include({ dead: 0, delivered: 1 });
    });

    it('does the same through the CLI: stats, list and retry of dead rows', async () => {
      const { app, postbacks } = await inboxApp({ maxAttempts: 2 });
      let broken = true;
      let delivered = 0;
      postbacks.on('action', () => {
        if (broken) throw new Error('down');
        delivered += 1;
      });
      await request(app).get(action('5.1')).expect(200);
      await request(app).get(action('5.2')).expect(200);
      const run = promisify(execFile);
      const cli = async (...args: string[]) =>
        (await run(process.execPath, [BIN, 'inbox', ...args, ...kind.cliArgs(), '--json'])).stdout;
      await until(async () => (JSON.parse(await cli('stats')) as { dead: number }).dead === 2, 15_000);
      const listed = JSON.parse(await cli('list', '--status', 'dead')) as {
        id: number;
        status: string;
        fields: Record<string, string>;
      }[];
      expect(listed.map((row) => [row.status, row.fields['ActionId']])).to.deep.equal([
        ['dead', '5.2'],
        ['dead', '5.1'],
      ]);
      broken = false;
      expect(JSON.parse(await cli('retry', '--dead'))).to.deep.equal({ retried: 2 });
      // The CLI runs in another process: this router learns of the rows by polling.
      await until(() => delivered === 2, 15_000);
      const text = (await run(process.execPath, [BIN, 'inbox', 'stats', ...kind.cliArgs()])).stdout;
      expect(text).to.match(/delivered\s+2/);
    });

    it("delivers one action's postbacks in the order they arrived, a later one waiting while an earlier one is retried", async () => {
      const { app, postbacks } = await inboxApp();
      const order: string[] = [];
      let failFirst = true;
      postbacks.on('action', (event, ctx) => {
        if (event.payout === '1.00' && failFirst) {
          failFirst = false;
          throw new Error('first attempt fails');
        }
        order.push(`${event.payout ?? ''} after ${ctx.previous?.payout ?? 'nothing'}`);
      });
      for (const payout of ['1.00', '2.00', '3.00'])
        await request(app)
          .get(action('6.1', { Payout: payout }))
          .expect(200);
      await until(() => order.length === 3);
      expect(order).to.deep.equal(['1.00 after nothing', '2.00 after 1.00', '3.00 after 2.00']);
    });

    it('emits a late PENDING after a final state as stale, and records it so', async () => {
      const { app, postbacks, inbox } = await inboxApp();
      const stale: string[] = [];
      postbacks.on('action', () => undefined);
      postbacks.on('stale', (event) => void stale.push(event.kind === 'action' ? (event.status ?? '') : event.state));
      await request(app)
        .get(action('7.1', { Status: 'REVERSED', Payout: '0.00' }))
        .expect(200);
      await request(app)
        .get(action('7.1', { Status: 'PENDING', Payout: '9.00' }))
        .expect(200);
      await until(() => stale.length === 1);
      await until(async () => (await inbox.stats()).delivered === 2);
      expect((await inbox.list()).map((row) => row.outcome)).to.deep.equal(['stale', 'delivered']);
    });

    it('close() lets a delivery in flight finish, then answers 503 router.closed with Connection: close', async () => {
      const { app, postbacks, inbox } = await inboxApp();
      let finished = false;
      postbacks.on('action', async () => {
        await sleep(300);
        finished = true;
      });
      await request(app).get(action('8.1')).expect(200);
      await until(async () => (await inbox.stats()).pending === 0 || finished);
      await postbacks.close({ timeoutMs: 5000 });
      expect(finished).to.equal(true);
      const res = await request(app).get(action('8.2')).expect(503);
      expect(errorCode(res.text)).to.equal('router.closed');
      expect(res.headers['connection']).to.equal('close');
    });

    it('a body that comes in once close() has started is answered 503 router.closed, and not stored', async () => {
      const { app, postbacks } = await inboxApp();
      postbacks.on('action', () => undefined);
      const server = await startServer(app);
      try {
        const body = JSON.stringify({ ActionId: '8.3', Status: 'PENDING', Payout: '5.00' });
        const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
          const req = http.request(
            {
              host: '127.0.0.1',
              port: server.port,
              method: 'POST',
              path: '/impact/actions',
              headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
            },
            (res) => {
              let text = '';
              res.on('data', (chunk: Buffer) => (text += chunk.toString()));
              res.on('end', () => {
                resolve({ status: res.statusCode ?? 0, text });
              });
            },
          );
          req.on('error', reject);
          req.write(body.slice(0, 10));
          // The rest of the body once close() has started.
          void sleep(100).then(() => {
            void postbacks.close({ timeoutMs: 2000 });
            req.end(body.slice(10));
          });
        });
        const { status, text } = await answer;
        // The router's store is closed by now: the inbox is read as the CLI reads it.
        const stats = (
          await promisify(execFile)(process.execPath, [BIN, 'inbox', 'stats', ...kind.cliArgs(), '--json'])
        ).stdout;
        const { pending, delivered } = JSON.parse(stats) as { pending: number; delivered: number };
        expect({ status, code: errorCode(text), stored: pending + delivered }).to.deep.equal({
          status: 503,
          code: 'router.closed',
          stored: 0,
        });
      } finally {
        await server.close();
      }
    });
  });
}

describe('inbox delivery: the database down at arrival', function () {
  this.timeout(20_000);
  before(async function () {
    await requirePostgres(this);
  });

  it('answers 503 and never 2xx, and stores nothing', async () => {
    const schema = await createTestSchema();
    const { startTcpProxy } = await import('./helpers/tcp-proxy.js');
    const proxy = await startTcpProxy(Number(new URL(DATABASE_URL).port || 5432), new URL(DATABASE_URL).hostname);
    const url = new URL(DATABASE_URL);
    url.host = `127.0.0.1:${proxy.port}`;
    const store = new PostgresStore({ connectionString: url.href, schema: schema.name });
    const postbacks = createPostbackRouter({ allowedIps: LOOPBACK, store, delivery: 'inbox', listenerTimeout: 2000 });
    postbacks.on('action', () => undefined);
    postbacks.on('error', () => undefined);
    const app = express();
    app.use('/impact', postbacks.router);
    try {
      await request(app).get(action('9.1')).expect(200);
      await proxy.down();
      const res = await request(app).get(action('9.2')).expect(503);
      expect(errorCode(res.text)).to.equal('store.failed');
      await proxy.up();
      const { rows } = await schema.pool.query(
        `SELECT fields->>'ActionId' AS id FROM "${schema.name}".impact_postbacks_inbox`,
      );
      expect(rows).to.deep.equal([{ id: '9.1' }]);
    } finally {
      await postbacks.close({ timeoutMs: 1000 });
      await proxy.close();
      await schema.drop();
    }
  });
});
