import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import Redis from 'ioredis';
import request from 'supertest';
import { MemoryStore, RedisStore, SqliteStore, type ActionEvent, type PostbackStore } from '../../lib';
import { clock } from '../../lib/clock';
import { createApp, type TestApp } from '../helpers/create-app';
import { apiAction } from '../helpers/fake-actions-api';
import { REDIS_URL, requireRedis } from '../helpers/services';
import { useTempDir } from '../helpers/temp-dir';
import { Gate } from '../harness/faulty-store';
import { HostLedger } from '../harness/host-ledger';
import { lifecycle, sendUntilAcknowledged, useReconciliation } from '../harness/impact';
import { until } from '../harness/until';

/** Moves the stores' clock on by `ms` until the test ends. */
function useMovableClock(): (ms: number) => void {
  let offset = 0;
  const real = clock.now;
  beforeEach(() => {
    offset = 0;
    clock.now = () => Date.now() + offset;
  });
  afterEach(() => {
    clock.now = real;
  });
  return (ms) => {
    offset += ms;
  };
}

describe('SqliteStore: the inbox and reconciliation never deliver one action at the same time', function () {
  this.timeout(30_000);
  const dir = useTempDir('impact-one-at-a-time-');
  const { api, closing, options: reconcileOptions } = useReconciliation();

  function inboxApp() {
    const store = new SqliteStore({ path: path.join(dir(), 'postbacks.db') });
    const app = createApp({ store, delivery: 'inbox', backoff: { baseMs: 20, maxMs: 40 } }, { listen: false });
    closing.push(() => app.postbacks.close({ timeoutMs: 1000 }));
    return app;
  }

  for (const first of ['the inbox row', 'reconciliation'] as const) {
    it(`${first} holding the action first: the reversal is emitted and debited once`, async () => {
      const { app, postbacks } = inboxApp();
      const ledger = new HostLedger();
      const reversals: ActionEvent[] = [];
      const gate = new Gate();
      postbacks.on('action', async (event, ctx) => {
        if (event.status === 'REVERSED') {
          reversals.push(event);
          const pausedTrigger = first === 'the inbox row' ? 'lifecycle' : 'reconciliation';
          if (event.trigger === pausedTrigger) await gate.wait();
        }
        ledger.apply(event, ctx);
      });
      await request(app)
        .get(lifecycle('3.1', 'PENDING', '5.00'))
        .expect(200);
      await until(() => ledger.entries.length === 1);
      api.put(apiAction('3.1', 'REVERSED', '5.00'));

      let reconciling: Promise<unknown>;
      if (first === 'the inbox row') {
        await request(app)
          .get(lifecycle('3.1', 'REVERSED', '5.00'))
          .expect(200);
        await gate.reached(1);
        reconciling = postbacks.reconcile(reconcileOptions()).catch((error: unknown) => error);
      } else {
        reconciling = postbacks.reconcile(reconcileOptions()).catch((error: unknown) => error);
        await gate.reached(1);
        await request(app)
          .get(lifecycle('3.1', 'REVERSED', '5.00'))
          .expect(200);
      }
      // Long enough for the other to deliver it too, if it can.
      await sleep(500);
      gate.open();
      await reconciling;
      await until(async () => (await postbacks.inbox?.stats())?.pending === 0);
      await sleep(200);

      expect({
        reversals: reversals.length,
        balance: ledger.balance('3.1'),
        changes: ledger.of('3.1').map((entry) => `${entry.from} → ${entry.to}`),
      }).to.deep.equal({
        reversals: 1,
        balance: 0,
        changes: ['new → PENDING 5.00', 'PENDING 5.00 → REVERSED 5.00'],
      });
    });
  }
});

interface SharedKind {
  readonly name: string;
  readonly before?: (context: Mocha.Context) => Promise<void>;
  /**
   * Two stores on one backend, as two processes have them, with the given lease; and how to
   * make time pass for the backend's leases without any timer of the process running (a stall).
   */
  readonly create: (leaseMs: number) => {
    stores: [PostbackStore, PostbackStore];
    stall: (ms: number) => Promise<void>;
  };
}

function sharedKinds(dir: () => string, moveClock: (ms: number) => void): SharedKind[] {
  const onClock = async (ms: number): Promise<void> => {
    moveClock(ms);
  };
  return [
    {
      name: 'MemoryStore',
      create: (leaseMs) => {
        const store = new MemoryStore({ leaseMs });
        return { stores: [store, store], stall: onClock };
      },
    },
    {
      name: 'SqliteStore',
      create: (leaseMs) => {
        const file = path.join(dir(), 'postbacks.db');
        const open = () => new SqliteStore({ path: file, leaseMs, lockTimeoutMs: 300 });
        return { stores: [open(), open()], stall: onClock };
      },
    },
    {
      name: 'RedisStore',
      before: (context) => requireRedis(context),
      create: (leaseMs) => {
        const keyPrefix = `test-lapse:${randomUUID()}:`;
        const open = () => new RedisStore({ url: REDIS_URL, keyPrefix, leaseMs, lockTimeoutMs: 300 });
        // Redis keeps the leases: time passes for them by their expiry coming closer.
        const stall = async (ms: number): Promise<void> => {
          const redis = new Redis(REDIS_URL);
          try {
            for (const key of await redis.keys(`${keyPrefix}*`)) {
              const left = await redis.pttl(key);
              if (left > 0) await redis.pexpire(key, Math.max(1, left - ms));
            }
          } finally {
            redis.disconnect();
          }
        };
        return { stores: [open(), open()], stall };
      },
    },
  ];
}

describe('a claim whose listener runs long never lets a final state be undone', function () {
  this.timeout(30_000);
  const dir = useTempDir('impact-lapse-');
  const moveClock = useMovableClock();
  const { api, closing, options: reconcileOptions } = useReconciliation();

  /**
   * Two receivers (two processes) on one store's data, their listeners writing one ledger; a
   * lifecycle PENDING's listener waits at the gate.
   */
  function twoProcesses(kind: SharedKind, leaseMs: number) {
    const ledger = new HostLedger();
    const gate = new Gate();
    const { stores, stall } = kind.create(leaseMs);
    const apps = stores.map((store) => {
      const app = createApp({ store, listenerTimeout: 5000 }, { listen: false });
      closing.push(() => app.postbacks.close({ timeoutMs: 1000 }));
      app.postbacks.on('action', async (event, ctx) => {
        if (event.status === 'PENDING' && event.trigger === 'lifecycle' && !gate.isOpen) await gate.wait();
        ledger.apply(event, ctx);
      });
      return app;
    }) as [TestApp, TestApp];
    const journalStatus = async (): Promise<unknown> => {
      const [record] = (await stores[0].readJournal?.(['action:6.1'])) ?? [];
      return record?.['status'];
    };
    return { apps, ledger, gate, journalStatus, stall };
  }

  for (const kind of sharedKinds(dir, moveClock)) {
    it(`${kind.name}: while a PENDING's listener runs past the lease, a REVERSED waits for it, and the ledger is exact`, async function () {
      await kind.before?.(this);
      const { apps, ledger, gate, journalStatus } = twoProcesses(kind, 300);
      const [one, two] = apps;
      const pending = request(one.app)
        .get(lifecycle('6.1', 'PENDING', '5.00'))
        .then((res) => res.status);
      await gate.reached(1);
      await sleep(600);
      const reversedWhileHeld = (await request(two.app).get(lifecycle('6.1', 'REVERSED', '5.00'))).status;
      gate.open();
      const pendingAnswer = await pending;
      api.put(apiAction('6.1', 'REVERSED', '5.00'));
      await sendUntilAcknowledged(two.app, lifecycle('6.1', 'REVERSED', '5.00'));
      await sendUntilAcknowledged(one.app, lifecycle('6.1', 'PENDING', '5.00'));
      await one.postbacks.reconcile(reconcileOptions());
      expect({
        pendingAnswer,
        reversedWhileHeld,
        balance: ledger.balance('6.1'),
        changes: ledger.of('6.1').map((entry) => `${entry.from} → ${entry.to}`),
        journal: await journalStatus(),
      }).to.deep.equal({
        pendingAnswer: 200,
        reversedWhileHeld: 503,
        balance: 0,
        changes: ['new → PENDING 5.00', 'PENDING 5.00 → REVERSED 5.00'],
        journal: 'REVERSED',
      });
    });

    it(`${kind.name}: a claim that lapsed while its process stalled never writes over the final state that came meanwhile`, async function () {
      await kind.before?.(this);
      const { apps, gate, journalStatus, stall } = twoProcesses(kind, 60_000);
      const [one, two] = apps;
      const pending = request(one.app)
        .get(lifecycle('6.1', 'PENDING', '5.00'))
        .then((res) => res.status);
      await gate.reached(1);
      // The process stalls past its lease (no timer of it runs meanwhile): time jumps.
      await stall(60_001);
      await request(two.app)
        .get(lifecycle('6.1', 'REVERSED', '5.00'))
        .expect(200);
      gate.open();
      const pendingAnswer = await pending;
      const journalAfter = await journalStatus();
      // impact.com retries the PENDING if it got no 2xx: it is stale now.
      await sendUntilAcknowledged(one.app, lifecycle('6.1', 'PENDING', '5.00'));
      api.put(apiAction('6.1', 'REVERSED', '5.00'));
      const report = await one.postbacks.reconcile(reconcileOptions());
      expect({
        pendingAnswer: pendingAnswer >= 500 ? '5xx' : pendingAnswer,
        journalAfter,
        stale: one.events.stale.length + two.events.stale.length,
        reconciled: report.delivered,
      }).to.deep.equal({ pendingAnswer: '5xx', journalAfter: 'REVERSED', stale: 1, reconciled: 0 });
    });
  }
});
