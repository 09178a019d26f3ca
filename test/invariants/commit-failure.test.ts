import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import request from 'supertest';
import {
  PostgresStore,
  RedisStore,
  SqliteStore,
  type PostbackError,
  type PostbackEvent,
  type PostbackStore,
} from '../../lib';
import { createApp } from '../helpers/create-app';
import { apiAction } from '../helpers/fake-actions-api';
import { DATABASE_URL, REDIS_URL, requireRedis, useTestSchema } from '../helpers/services';
import { useTempDir } from '../helpers/temp-dir';
import { FaultyStore, type Fault } from '../harness/faulty-store';
import { HostLedger } from '../harness/host-ledger';
import { lifecycle, sendUntilAcknowledged, useReconciliation } from '../harness/impact';
import { until } from '../harness/until';

interface LeaseKind {
  readonly name: string;
  readonly before?: (context: Mocha.Context) => Promise<void>;
  readonly create: () => PostbackStore;
}

function leaseKinds(dir: () => string): LeaseKind[] {
  return [
    { name: 'SqliteStore', create: () => new SqliteStore({ path: path.join(dir(), 'postbacks.db') }) },
    {
      name: 'RedisStore',
      before: (context) => requireRedis(context),
      create: () => new RedisStore({ url: REDIS_URL, keyPrefix: `test-commit:${randomUUID()}:` }),
    },
  ];
}

describe('a commit that fails on a store without transactions', function () {
  this.timeout(30_000);
  const dir = useTempDir('impact-commit-');
  const { api, closing, options: reconcileOptions } = useReconciliation();

  for (const kind of leaseKinds(dir)) {
    for (const fault of [{ kind: 'fail' }, { kind: 'fail-after' }] satisfies Fault[]) {
      it(`${kind.name}, commit ${fault.kind}: answers 503, records the effect once the store is back, and reconciliation does not debit the reversal again`, async function () {
        await kind.before?.(this);
        const store = new FaultyStore(kind.create());
        const app = createApp({ store, listenerTimeout: 1000 });
        closing.push(() => app.postbacks.close());
        const ledger = new HostLedger();
        app.postbacks.on('action', (event, ctx) => void ledger.apply(event, ctx));

        await request(app.app)
          .get(lifecycle('7.1', 'PENDING', '5.00'))
          .expect(200);
        store.inject({ op: 'commit', fault });
        const first = await request(app.app).get(lifecycle('7.1', 'REVERSED', '5.00'));
        // The store is back: impact.com retries the 5xx, and reconciliation runs as usual.
        store.heal();
        api.put(apiAction('7.1', 'REVERSED', '5.00'));
        const retries = await sendUntilAcknowledged(app.app, lifecycle('7.1', 'REVERSED', '5.00'));
        await app.postbacks.reconcile(reconcileOptions());

        expect({
          firstAnswer: first.status,
          acknowledged: retries.at(-1),
          balance: ledger.balance('7.1'),
          changes: ledger.of('7.1').map((entry) => `${entry.from} → ${entry.to}`),
        }).to.deep.equal({
          firstAnswer: 503,
          acknowledged: 200,
          balance: 0,
          changes: ['new → PENDING 5.00', 'PENDING 5.00 → REVERSED 5.00'],
        });
        expect(app.events.error.map((error) => error.code)).to.include('store.failed');
      });
    }
  }
});

describe('PostgresStore inbox: a delivery whose COMMIT fails', function () {
  this.timeout(30_000);
  const closing: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
    // A listener's long query must not outlive its test (old code left it running).
    await schema()
      .pool.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%' AND pid <> pg_backend_pid()",
      )
      .catch(() => undefined);
  });
  // After the hook above: stores close before their schema is dropped.
  const schema = useTestSchema();

  function inboxApp(options: { listenerTimeout?: number; lockTimeoutMs?: number; maxAttempts?: number } = {}) {
    const store = new PostgresStore({
      connectionString: DATABASE_URL,
      schema: schema().name,
      ...(options.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: options.lockTimeoutMs }),
    });
    const app = createApp<unknown>(
      {
        store,
        delivery: 'inbox',
        maxAttempts: options.maxAttempts ?? 3,
        backoff: { baseMs: 20, maxMs: 40 },
        listenerTimeout: options.listenerTimeout ?? 2000,
      },
      { listen: false },
    );
    closing.push(async () => {
      await app.postbacks.close({ timeoutMs: 1000 });
    });
    const dead: [PostbackEvent | null, PostbackError][] = [];
    app.postbacks.on('dead', (event, error) => void dead.push([event, error]));
    return { ...app, dead };
  }

  const commitFailures = [
    {
      name: 'a statement failed and the listener caught its error',
      table: 'CREATE TABLE $t (id integer PRIMARY KEY); INSERT INTO $t VALUES (1)',
    },
    {
      name: 'a deferred constraint fails at COMMIT',
      table:
        'CREATE TABLE $t (id integer, CONSTRAINT once UNIQUE (id) DEFERRABLE INITIALLY DEFERRED); INSERT INTO $t VALUES (1)',
    },
  ];
  for (const failure of commitFailures) {
    it(`${failure.name}: each attempt is counted, backoff and maxAttempts hold, and dead comes once`, async () => {
      const table = `"${schema().name}".done`;
      await schema().pool.query(failure.table.replaceAll('$t', table));
      const { app, postbacks, dead } = inboxApp();
      let calls = 0;
      postbacks.on('action', async (_event, ctx) => {
        calls += 1;
        const transaction = ctx.transaction as { query(text: string): Promise<unknown> };
        try {
          await transaction.query(`INSERT INTO ${table} VALUES (1)`);
        } catch {
          // "Already done": the listener carries on, and the transaction cannot commit.
        }
      });
      await request(app)
        .get(lifecycle('9.1', 'PENDING', '5.00'))
        .expect(200);
      await until(() => dead.length > 0, 5000).catch(() => undefined);
      await sleep(300);
      const rows = await postbacks.inbox?.list();
      expect({ calls, dead: dead.length, status: rows?.[0]?.status, attempts: rows?.[0]?.attempts }).to.deep.equal({
        calls: 3,
        dead: 1,
        status: 'dead',
        attempts: 3,
      });
    });
  }

  it('a listener stuck in a long query past the timeout: its attempt is counted at once and its query ended', async () => {
    const { app, postbacks } = inboxApp({ listenerTimeout: 200, lockTimeoutMs: 100, maxAttempts: 1 });
    postbacks.on('action', async (_event, ctx) => {
      await (ctx.transaction as { query(text: string): Promise<unknown> }).query('SELECT pg_sleep(30)');
    });
    // The schema made first: on a loaded machine it alone can take longer than the 200 ms the add is given.
    await postbacks.inbox?.stats();
    await request(app)
      .get(lifecycle('9.2', 'PENDING', '5.00'))
      .expect(200);
    await sleep(2500);
    const rows = await postbacks.inbox?.list();
    const { rows: sleeping } = await schema().pool.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
    );
    expect({
      status: rows?.[0]?.status,
      attempts: rows?.[0]?.attempts,
      sleeping: (sleeping[0] as { n: number }).n,
    }).to.deep.equal({
      status: 'dead',
      attempts: 1,
      sleeping: 0,
    });
  });
});
