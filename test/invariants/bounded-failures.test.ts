import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import request from 'supertest';
import pg from 'pg';
import {
  MemoryStore,
  PostgresStore,
  SqliteStore,
  type InboxRow,
  type InboxStore,
  type ActionEvent,
  type PgPool,
  type PostbackError,
  type StoreInbox,
} from '../../lib';
import { createApp, errorCode } from '../helpers/create-app';
import { freePort } from '../helpers/server';
import { DATABASE_URL, useTestSchema } from '../helpers/services';
import { useTempDir } from '../helpers/temp-dir';
import { FaultyStore, Gate } from '../harness/faulty-store';
import { watchPackageTimers } from '../harness/package-timers';
import { until } from '../harness/until';

function lifecycle(id: string, status = 'PENDING', payout = '5.00'): string {
  return `/impact/actions?${new URLSearchParams({ ActionId: id, Status: status, Payout: payout }).toString()}`;
}

/** Errors that escape to the process while `run` runs (and `settleMs` after), instead of crashing it. */
async function escaping(run: () => Promise<void>, settleMs: number): Promise<unknown[]> {
  const escaped: unknown[] = [];
  const record = (error: unknown): void => void escaped.push(error);
  // Listened to first, so that mocha's own handler does not see them.
  process.prependListener('uncaughtException', record);
  process.prependListener('unhandledRejection', record);
  try {
    await run();
    await sleep(settleMs);
  } finally {
    process.removeListener('uncaughtException', record);
    process.removeListener('unhandledRejection', record);
  }
  return escaped;
}

describe('every failure is bounded: no timer throws, no listener holds on forever, close() ends what it owns', function () {
  this.timeout(20_000);
  const dir = useTempDir('impact-bounded-');
  const closing: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
  });

  function sqlite(options: { inboxLeaseMs?: number } = {}): SqliteStore {
    return new SqliteStore({ path: path.join(dir(), 'postbacks.db'), ...options });
  }

  /** A SQLite store whose inbox answers with `replaced` where given, and as SQLite does elsewhere. */
  function sqliteInboxWith(replace: (real: SqliteStore) => Partial<StoreInbox<undefined>>): InboxStore<undefined> {
    const real = sqlite();
    const replaced = replace(real);
    const inbox: StoreInbox<undefined> = {
      add: (entry) => real.inbox.add(entry),
      next: () => real.inbox.next(),
      waitForWork: (ms) => real.inbox.waitForWork(ms),
      stats: () => real.inbox.stats(),
      list: (query) => real.inbox.list(query),
      retry: (target) => real.inbox.retry(target),
      ...replaced,
    };
    return { begin: (key, subject) => real.begin(key, subject), inbox, close: () => real.close() };
  }

  it('SqliteStore inbox: a listener outliving close() neither crashes the process nor keeps a timer going', async () => {
    const timers = watchPackageTimers();
    const app = createApp(
      { store: sqlite({ inboxLeaseMs: 60 }), delivery: 'inbox', listenerTimeout: 100 },
      { listen: false },
    );
    let started = false;
    app.postbacks.on('action', () => {
      started = true;
      return new Promise(() => undefined);
    });
    const escaped = await escaping(async () => {
      await request(app.app).get(lifecycle('5.1')).expect(200);
      await until(() => started);
      await app.postbacks.close({ timeoutMs: 50 });
    }, 300);
    timers.stop();
    expect({ escaped: escaped.map(String), timersLeft: timers.alive() }).to.deep.equal({ escaped: [], timersLeft: [] });
  });

  it('SqliteStore inbox: a renewal that throws (SQLITE_BUSY) does not crash the process, and the row is delivered', async () => {
    const store = new FaultyStore(sqlite({ inboxLeaseMs: 60 }));
    store.inject({ op: 'row.renew', fault: { kind: 'throw' }, times: 2 });
    const app = createApp({ store, delivery: 'inbox', listenerTimeout: 1000 }, { listen: false });
    closing.push(() => app.postbacks.close());
    let delivered = 0;
    app.postbacks.on('action', async () => {
      await sleep(150);
      delivered += 1;
    });
    const escaped = await escaping(async () => {
      await request(app.app).get(lifecycle('5.2')).expect(200);
      await until(() => delivered === 1, 5000);
    }, 100);
    expect({ escaped: escaped.map(String), delivered }).to.deep.equal({ escaped: [], delivered: 1 });
  });

  it('inbox: a listener that never settles is given up on; its attempt counts, and other actions are not kept waiting', async () => {
    const app = createApp(
      {
        store: sqlite({ inboxLeaseMs: 300 }),
        delivery: 'inbox',
        listenerTimeout: 100,
        concurrency: 1,
        maxAttempts: 2,
        backoff: { baseMs: 10, maxMs: 20 },
      },
      { listen: false },
    );
    closing.push(() => app.postbacks.close({ timeoutMs: 100 }));
    const delivered: string[] = [];
    let dead = 0;
    app.postbacks.on('dead', () => void (dead += 1));
    app.postbacks.on('action', (event) => {
      if (event.actionId === '5.3') return new Promise(() => undefined);
      delivered.push(event.actionId);
      return undefined;
    });
    await request(app.app).get(lifecycle('5.3')).expect(200);
    await sleep(50);
    await request(app.app).get(lifecycle('5.4')).expect(200);
    await until(() => delivered.length === 1 && dead === 1, 8000).catch(() => undefined);
    const rows = await app.postbacks.inbox?.list();
    const hung = rows?.find((row) => row.event?.kind === 'action' && row.event.actionId === '5.3');
    expect({ delivered, dead, hung: [hung?.status, hung?.attempts] }).to.deep.equal({
      delivered: ['5.4'],
      dead: 1,
      hung: ['dead', 2],
    });
  });

  it('direct delivery: an action whose listener never settles is free again after the bound, not for the whole lease', async () => {
    const app = createApp({ store: sqlite(), listenerTimeout: 100 }, { listen: false });
    closing.push(() => app.postbacks.close({ timeoutMs: 100 }));
    let calls = 0;
    app.postbacks.on('action', () => {
      calls += 1;
      return calls === 1 ? new Promise(() => undefined) : undefined;
    });
    expect((await request(app.app).get(lifecycle('5.5'))).status).to.equal(503);
    const statuses: number[] = [];
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline && statuses.at(-1) !== 200) {
      statuses.push((await request(app.app).get(lifecycle('5.5'))).status);
      await sleep(100);
    }
    expect({ acknowledged: statuses.at(-1), calls }).to.deep.equal({ acknowledged: 200, calls: 2 });
  });

  it('direct delivery: a claim that comes after the timeout is let go, and a release that throws does not escape', async () => {
    const store = new FaultyStore(new MemoryStore())
      .inject({ op: 'begin', fault: { kind: 'delay', ms: 300 } })
      .inject({ op: 'release', fault: { kind: 'throw' } });
    const app = createApp({ store, listenerTimeout: 100 }, { listen: false });
    closing.push(() => app.postbacks.close({ timeoutMs: 100 }));
    const escaped = await escaping(async () => {
      expect((await request(app.app).get(lifecycle('5.10'))).status).to.equal(503);
    }, 500);
    expect({ escaped: escaped.map(String), releases: store.count('release') }).to.deep.equal({
      escaped: [],
      releases: 1,
    });
  });

  it('direct delivery: a postback waiting behind another of its action is not begun once close() has started', async () => {
    const store = new FaultyStore(new MemoryStore());
    const app = createApp({ store, listenerTimeout: 2000 }, { listen: false });
    let finish!: () => void;
    const held = new Promise<void>((resolve) => {
      finish = resolve;
    });
    app.postbacks.on('action', () => held);
    const first = request(app.app)
      .get(lifecycle('5.13', 'PENDING'))
      .then((res) => res.status);
    await until(() => store.count('begin') === 1);
    const second = request(app.app)
      .get(lifecycle('5.13', 'APPROVED'))
      .then((res) => res.status);
    await sleep(50);
    const closed = app.postbacks.close({ timeoutMs: 50 });
    await sleep(100);
    finish();
    await closed;
    // The first was given up at close()'s timeout; the second must not start after it.
    expect({ first: await first, second: await second, begins: store.count('begin') }).to.deep.equal({
      first: 503,
      second: 503,
      begins: 1,
    });
  });

  it('direct delivery: a claim that comes once close() has started is let go, not delivered', async () => {
    const gate = new Gate();
    const store = new FaultyStore(new MemoryStore()).inject({ op: 'begin', fault: { kind: 'pause', gate } });
    const app = createApp({ store, listenerTimeout: 2000 }, { listen: false });
    let heard = 0;
    app.postbacks.on('action', () => void (heard += 1));
    const answer = request(app.app)
      .get(lifecycle('5.14', 'PENDING'))
      .then((res) => [res.status, errorCode(res.text)]);
    await gate.reached(1);
    // close() gives up at once on the postback it waits for; its claim comes after that.
    await app.postbacks.close({ timeoutMs: 10 });
    gate.open();
    const answered = await answer;
    await sleep(50);
    expect({ answered, heard, releases: store.count('release'), commits: store.count('commit') }).to.deep.equal({
      answered: [503, 'router.closed'],
      heard: 0,
      releases: 1,
      commits: 0,
    });
  });

  it('inbox: a row taken once close() has started is given back, not delivered', async () => {
    const real = sqlite();
    closing.push(async () => real.close());
    // A store whose close() is slow to end its connections (a pool waiting for its clients).
    const stillOpen = Object.assign(Object.create(real) as SqliteStore, { close: () => undefined });
    const gate = new Gate();
    const store = new FaultyStore(stillOpen).inject({ op: 'inbox.next', fault: { kind: 'pause', gate } });
    const app = createApp({ store, delivery: 'inbox', listenerTimeout: 2000 }, { listen: false });
    let heard = 0;
    app.postbacks.on('action', () => void (heard += 1));
    await request(app.app).get(lifecycle('5.15', 'PENDING')).expect(200);
    await gate.reached(1);
    await app.postbacks.close({ timeoutMs: 10 });
    gate.open();
    await sleep(100);
    const rows = await real.inbox.list();
    expect({ heard, rows: rows.map((row) => [row.status, row.attempts]) }).to.deep.equal({
      heard: 0,
      rows: [['pending', 0]],
    });
  });

  it('inbox: a row that no longer builds an event, and a release that throws: the attempt is still counted', async () => {
    const real = sqlite();
    await real.inbox.add({
      key: 'unknown-route',
      subject: 'action:5.11',
      route: 'gone',
      format: 'query',
      ip: '127.0.0.1',
      path: '/impact/gone',
      receivedAt: new Date(),
      fields: '{"ActionId":"5.11"}',
    });
    const store = new FaultyStore(real).inject({ op: 'row.release', fault: { kind: 'throw' } });
    const app = createApp({ store, delivery: 'inbox', maxAttempts: 1 }, { listen: false });
    closing.push(() => app.postbacks.close({ timeoutMs: 100 }));
    const dead = async (): Promise<InboxRow[]> => real.inbox.list({ status: 'dead' });
    const escaped = await escaping(
      () => until(async () => (await dead()).length === 1, 3000).catch(() => undefined),
      100,
    );
    expect({
      escaped: escaped.map(String),
      releases: store.count('row.release'),
      rows: (await dead()).map((row) => [row.key, row.attempts]),
    }).to.deep.equal({ escaped: [], releases: 1, rows: [['unknown-route', 1]] });
  });

  it('inbox: an attempt that cannot be counted is not delivered, and the row is not taken again at once', async () => {
    const real = sqlite();
    const store = new FaultyStore(real).inject({ op: 'row.start', fault: { kind: 'throw' }, times: 1000 });
    const app = createApp({ store, delivery: 'inbox' }, { listen: false });
    closing.push(() => app.postbacks.close({ timeoutMs: 100 }));
    let heard = 0;
    app.postbacks.on('action', () => void (heard += 1));
    await request(app.app).get(lifecycle('5.18')).expect(200);
    await until(() => store.count('row.start') >= 1);
    await sleep(1500);
    const rows = await real.inbox.list();
    expect({
      heard,
      // The first take, and at most two more after a second's pause each.
      starts: store.count('row.start') <= 3,
      reported: app.events.error.some((error) => error.message.includes('could not count an attempt')),
      rows: rows.map((row) => [row.status, row.attempts]),
    }).to.deep.equal({ heard: 0, starts: true, reported: true, rows: [['pending', 0]] });
  });

  it('inbox: a row whose attempt is counted as close() starts is given back, its listeners not begun', async () => {
    const timers = watchPackageTimers();
    const real = sqlite();
    const gate = new Gate();
    const store = new FaultyStore(real).inject({ op: 'row.start', fault: { kind: 'pause', gate } });
    const app = createApp({ store, delivery: 'inbox', listenerTimeout: 5000 }, { listen: false });
    let heard = 0;
    app.postbacks.on('action', () => void (heard += 1));
    await request(app.app).get(lifecycle('5.21')).expect(200);
    await gate.reached(1);
    const closed = app.postbacks.close({ timeoutMs: 500 });
    await sleep(20);
    gate.open();
    await closed;
    await sleep(200);
    timers.stop();
    const after = sqlite();
    closing.push(async () => after.close());
    const rows = await after.inbox.list();
    expect({
      heard,
      rows: rows.map((row) => [row.status, row.attempts]),
      errors: app.events.error.map((error) => error.message),
      timers: timers.alive(),
    }).to.deep.equal({ heard: 0, rows: [['pending', 0]], errors: [], timers: [] });
  });

  it("SqliteStore inbox: an operator's retry of a row under delivery is left to that delivery, and a count never goes below 0", async () => {
    const real = sqlite();
    const app = createApp(
      { store: real, delivery: 'inbox', maxAttempts: 2, backoff: { baseMs: 10, maxMs: 10 }, listenerTimeout: 5000 },
      { listen: false },
    );
    const gate = new Gate();
    let runs = 0;
    app.postbacks.on('action', async () => {
      runs += 1;
      await gate.wait();
    });
    await request(app.app).get(lifecycle('5.22')).expect(200);
    await until(() => runs === 1);
    const [row] = await real.inbox.list();
    const retried = await real.inbox.retry(row?.id ?? 0);
    await app.postbacks.close({ timeoutMs: 50 });
    gate.open();
    const after = sqlite();
    closing.push(async () => after.close());
    const rows = await after.inbox.list();
    expect({ retried, rows: rows.map((item) => [item.status, item.attempts]) }).to.deep.equal({
      retried: 0,
      rows: [['pending', 0]],
    });
  });

  it('inbox: a store whose waitForWork throws or rejects does not stop the worker, and it is reported', async () => {
    let waits = 0;
    const store = sqliteInboxWith((real) => ({
      waitForWork: (ms) => {
        waits += 1;
        if (waits === 1) throw new Error('wait thrown');
        if (waits === 2) return Promise.reject(new Error('wait rejected'));
        return real.inbox.waitForWork(ms);
      },
    }));
    const app = createApp({ store, delivery: 'inbox' });
    closing.push(() => app.postbacks.close({ timeoutMs: 100 }));
    const escaped = await escaping(async () => {
      await until(() => waits >= 2);
      expect((await request(app.app).get(lifecycle('5.12'))).status).to.equal(200);
      await until(() => app.events.action.length === 1);
    }, 50);
    expect({
      escaped: escaped.map(String),
      delivered: app.events.action.map((event) => event.actionId),
      reported: app.events.error.map((error) => `${error.code}: ${String(error.cause)}`),
    }).to.deep.equal({
      escaped: [],
      delivered: ['5.12'],
      reported: ['store.failed: Error: wait thrown', 'store.failed: Error: wait rejected'],
    });
  });

  it('inbox: a store whose add answers with a thenable that rejects is answered 503, never 2xx', async () => {
    const store = sqliteInboxWith(() => ({
      add: () =>
        ({ then: (_resolve: unknown, reject: (error: Error) => void) => reject(new Error('disk full')) }) as never,
    }));
    const app = createApp({ store, delivery: 'inbox' });
    closing.push(() => app.postbacks.close());
    expect((await request(app.app).get(lifecycle('5.6'))).status).to.equal(503);
  });

  it('close() waits for listeners still running after a 503 timeout, and their commit lands', async () => {
    const file = path.join(dir(), 'postbacks.db');
    const app = createApp({ store: new SqliteStore({ path: file }), listenerTimeout: 100 }, { listen: false });
    let finished = false;
    app.postbacks.on('action', async () => {
      await sleep(300);
      finished = true;
    });
    expect((await request(app.app).get(lifecycle('5.7'))).status).to.equal(503);
    await app.postbacks.close({ timeoutMs: 2000 });
    const errors: PostbackError[] = app.events.error.filter((error) => error.code === 'store.failed');
    const again = createApp({ store: new SqliteStore({ path: file }) });
    closing.push(() => again.postbacks.close());
    const retry = await request(again.app).get(lifecycle('5.7'));
    expect({ finished, storeFailures: errors.length, retry: retry.headers['x-postback-outcome'] }).to.deep.equal({
      finished: true,
      storeFailures: 0,
      retry: 'duplicate',
    });
  });
});

/**
 * A pool whose next connect() after `slowNext()` waits at `gate` (a connection that comes late,
 * as from a busy pool); `real` is the pool behind it.
 */
function gatedPool(): { real: pg.Pool; pool: PgPool; gate: Gate; slowNext: () => void } {
  const real = new pg.Pool({ connectionString: DATABASE_URL, max: 5 });
  real.on('error', () => undefined);
  let slow = false;
  const gate = new Gate();
  const pool: PgPool = {
    connect: async () => {
      if (slow) {
        slow = false;
        await gate.wait();
      }
      return real.connect();
    },
    end: () => real.end(),
  };
  return { real, pool, gate, slowNext: () => void (slow = true) };
}

describe('PostgresStore inbox: giving a delivery up never strands its row, nor crashes the process', function () {
  this.timeout(30_000);
  const closing: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closing.splice(0)) await close().catch(() => undefined);
  });
  // After the hook above: stores close before their schema is dropped.
  const schema = useTestSchema();

  it('close() shorter than the listeners: the row and the action are let go, and the pool ends', async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 5 });
    pool.on('error', () => undefined);
    const app = createApp<unknown>(
      { store: new PostgresStore({ pool, schema: schema().name }), delivery: 'inbox', listenerTimeout: 5000 },
      { listen: false },
    );
    let started = false;
    app.postbacks.on('action', () => {
      started = true;
      return new Promise(() => undefined);
    });
    await request(app.app).get(lifecycle('5.8')).expect(200);
    await until(() => started);
    await app.postbacks.close({ timeoutMs: 100 });
    const ended = await Promise.race([pool.end().then(() => 'ended'), sleep(3000).then(() => 'still open')]);
    const inbox = `"${schema().name}".impact_postbacks_inbox`;
    const client = await schema().pool.connect();
    let rowLocked = false;
    try {
      await client.query('BEGIN');
      await client.query(`SELECT id FROM ${inbox} FOR UPDATE NOWAIT`);
    } catch (error) {
      rowLocked = (error as { code?: string }).code === '55P03';
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
    const rows = await schema().pool.query(`SELECT status, attempts FROM ${inbox}`);
    expect({ ended, rowLocked, rows: rows.rows }).to.deep.equal({
      ended: 'ended',
      rowLocked: false,
      rows: [{ status: 'pending', attempts: 0 }],
    });
  });

  it('a server error in the instant between a new connection and its first use never escapes (pg hands it out listener-less)', async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    pool.on('error', () => undefined);
    const store = new PostgresStore({ pool, schema: schema().name });
    closing.push(async () => {
      await store.close();
      await pool.end();
    });
    // A backend ended as it starts (a restart, a failover, pg_terminate_backend) can send its
    // FATAL in the same packet as its readiness: pg reads both in one go, after the pool took
    // its own listener off and before the claim could put one on. Here the FATAL is read there.
    let terminated = 0;
    pool.on('connect', (client) => {
      if (terminated > 0) return;
      terminated += 1;
      const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
      // After the pool hands the client out, before whoever asked for it gets it.
      queueMicrotask(() => {
        connection.emit(
          'errorMessage',
          Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
        );
      });
    });
    const escaped: unknown[] = [];
    const record = (error: unknown): void => void escaped.push(error);
    process.prependListener('uncaughtException', record);
    let first: string;
    try {
      first = await Promise.resolve(store.begin('first use', 'action:5.11')).then(
        (claim) => (typeof claim === 'object' ? 'claimed' : claim),
        (error: unknown) => `failed: ${String(error)}`,
      );
      await sleep(50);
    } finally {
      process.removeListener('uncaughtException', record);
    }
    const second = await store.begin('first use', 'action:5.11');
    if (typeof second === 'object') await second.release('failed');
    expect({
      escaped: escaped.map(String),
      firstFailed: first.startsWith('failed'),
      second: typeof second,
    }).to.deep.equal({
      escaped: [],
      firstFailed: true,
      second: 'object',
    });
  });

  it('listeners past the timeout while PostgreSQL refuses connections: reported, never an unhandled rejection', async () => {
    const real = new pg.Pool({ connectionString: DATABASE_URL, max: 5 });
    real.on('error', () => undefined);
    const down = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${await freePort()}/test` });
    down.on('error', () => undefined);
    let isDown = false;
    const pool: PgPool = {
      connect: () => (isDown ? down.connect() : real.connect()),
      end: async () => {
        await real.end();
        await down.end();
      },
    };
    const store = new PostgresStore({ pool, schema: schema().name });
    // The schema made and a connection opened first: on a loaded machine they alone can take
    // longer than the 300 ms the add is given here, and the postback would get its 503 for that.
    await store.inbox.stats();
    const app = createApp<unknown>({ store, delivery: 'inbox', listenerTimeout: 300 }, { listen: false });
    closing.push(async () => {
      isDown = false;
      await app.postbacks.close({ timeoutMs: 500 });
      await pool.end();
    });
    let started = false;
    app.postbacks.on('action', () => {
      started = true;
      // PostgreSQL goes away while the listener runs.
      isDown = true;
      return new Promise(() => undefined);
    });
    const escaped: unknown[] = [];
    const record = (reason: unknown): void => void escaped.push(reason);
    process.prependListener('unhandledRejection', record);
    try {
      await request(app.app).get(lifecycle('5.9')).expect(200);
      await until(() => started);
      await sleep(1500);
    } finally {
      process.removeListener('unhandledRejection', record);
    }
    expect({
      escaped: escaped.map(String),
      reported: app.events.error.some((error) => error.message.includes('failed to record a failed delivery')),
    }).to.deep.equal({ escaped: [], reported: true });
  });
  it('listeners past the timeout, their failure recorded late: another worker that takes the row meanwhile counts both attempts', async () => {
    // The connection the attempt is recorded through comes late, as from a busy pool.
    const { real, pool, gate, slowNext } = gatedPool();
    const first = new PostgresStore({ pool, schema: schema().name });
    await first.inbox.stats();
    const options = {
      delivery: 'inbox',
      listenerTimeout: 300,
      maxAttempts: 4,
      backoff: { baseMs: 60_000, maxMs: 60_000 },
      concurrency: 1,
    } as const;
    const firstApp = createApp<unknown>({ store: first, ...options }, { listen: false });
    const apps = [firstApp];
    closing.push(async () => {
      gate.open();
      for (const app of apps) await app.postbacks.close({ timeoutMs: 500 });
      await real.end();
    });
    const runs: string[] = [];
    const listener = (event: ActionEvent): Promise<void> | undefined => {
      runs.push(event.actionId);
      if (event.actionId !== '5.16') return undefined;
      if (runs.filter((id) => id === '5.16').length > 1) throw new Error('the ledger is down');
      // Never settles; the next connection asked for, just before the timeout, is the recorder's.
      setTimeout(() => {
        slowNext();
      }, 150);
      return new Promise(() => undefined);
    };
    firstApp.postbacks.on('action', listener);
    await request(firstApp.app).get(lifecycle('5.16')).expect(200);
    await until(() => runs.length === 1);
    // Another instance, idle until a postback of its own wakes its worker.
    const second = createApp<unknown>(
      { store: new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name }), ...options },
      { listen: false },
    );
    apps.push(second);
    second.postbacks.on('action', listener);
    await gate.reached(1);
    await sleep(200);
    await request(second.app).get(lifecycle('5.17')).expect(200);
    await until(() => runs.includes('5.17'));
    await sleep(100);
    gate.open();
    const counted = async (): Promise<number> =>
      (await first.inbox.list()).find((row) => row.subject === 'action:5.16')?.attempts ?? 0;
    const runsOf = (): number => runs.filter((id) => id === '5.16').length;
    await until(async () => runsOf() >= 2 && (await counted()) >= 1);
    await sleep(300);
    // The second worker took the row while the first attempt's failure was on its way: it ran
    // the listener again, and both attempts count.
    expect({ runs: runsOf(), attempts: await counted() }).to.deep.equal({
      runs: 2,
      attempts: 2,
    });
  });
  it("an operator's retry stands, though a timed-out attempt's failure is recorded after it", async () => {
    // The connection the attempt is recorded through comes late, as from a busy pool.
    const { real, pool, gate, slowNext } = gatedPool();
    const store = new PostgresStore({ pool, schema: schema().name });
    const admin = new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name });
    await store.inbox.stats();
    const app = createApp<unknown>(
      {
        store,
        delivery: 'inbox',
        listenerTimeout: 300,
        maxAttempts: 2,
        concurrency: 1,
        backoff: { baseMs: 10, maxMs: 10 },
      },
      { listen: false },
    );
    closing.push(async () => {
      gate.open();
      await app.postbacks.close({ timeoutMs: 500 });
      await admin.close();
      await real.end();
    });
    let runs = 0;
    let dead = 0;
    app.postbacks.on('dead', () => void (dead += 1));
    app.postbacks.on('action', () => {
      runs += 1;
      if (runs === 1) throw new Error('the ledger is down');
      if (runs > 2) return undefined;
      // The last attempt never settles; the connection its failure is recorded through comes late.
      setTimeout(() => {
        slowNext();
      }, 150);
      return new Promise(() => undefined);
    });
    await request(app.app).get(lifecycle('5.19')).expect(200);
    await until(() => runs === 2);
    await gate.reached(1);
    const [row] = await admin.inbox.list();
    expect(await admin.inbox.retry(row?.id ?? 0)).to.equal(1);
    gate.open();
    await until(() => runs === 3);
    await until(async () => (await admin.inbox.list())[0]?.status === 'delivered');
    expect({ runs, dead }).to.deep.equal({ runs: 3, dead: 0 });
  });

  it('a delivery cut short by close() uses up no attempt: the next process delivers the row', async () => {
    const options = {
      delivery: 'inbox',
      listenerTimeout: 5000,
      maxAttempts: 2,
      backoff: { baseMs: 10, maxMs: 10 },
    } as const;
    const first = createApp<unknown>(
      { store: new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name }), ...options },
      { listen: false },
    );
    let runs = 0;
    first.postbacks.on('action', () => {
      runs += 1;
      if (runs === 1) throw new Error('the ledger is down');
      return new Promise(() => undefined);
    });
    await request(first.app).get(lifecycle('5.20')).expect(200);
    await until(() => runs === 2);
    await first.postbacks.close({ timeoutMs: 200 });
    const store = new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name });
    const second = createApp<unknown>({ store, ...options }, { listen: false });
    closing.push(() => second.postbacks.close({ timeoutMs: 500 }));
    let dead = 0;
    second.postbacks.on('dead', () => void (dead += 1));
    second.postbacks.on('action', () => void (runs += 1));
    await until(async () => (await store.inbox.list())[0]?.status === 'delivered');
    const [row] = await store.inbox.list();
    expect({ runs, dead, attempts: row?.attempts }).to.deep.equal({
      runs: 3,
      dead: 0,
      attempts: 2,
    });
  });
  it('close() with several deliveries under way takes back every count they began', async () => {
    const options = { delivery: 'inbox', listenerTimeout: 5000, concurrency: 4, maxAttempts: 3 } as const;
    const store = new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name });
    const app = createApp<unknown>({ store, ...options }, { listen: false });
    let runs = 0;
    app.postbacks.on('action', () => {
      runs += 1;
      return new Promise(() => undefined);
    });
    for (let index = 0; index < 4; index += 1)
      await request(app.app)
        .get(lifecycle(`5.3${index}`))
        .expect(200);
    await until(() => runs === 4);
    await app.postbacks.close({ timeoutMs: 0 });
    const admin = new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name });
    closing.push(() => admin.close());
    const rows = await admin.inbox.list();
    expect(rows.map((row) => [row.status, row.attempts])).to.deep.equal(
      Array.from({ length: 4 }, () => ['pending', 0]),
    );
  });
});
