import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import request from 'supertest';
import { MemoryStore, PostgresStore, SqliteStore, type InboxStore } from '../../lib';
import { objectsOf } from '../../lib/stores/postgres/postgres-schema';
import { createApp, staleActions } from '../helpers/create-app';
import { INQUIRY } from '../helpers/fixtures';
import { apiAction, FakeActionsApi } from '../helpers/fake-actions-api';
import { DATABASE_URL, requirePostgres, useTestSchema } from '../helpers/services';
import { useTempDir } from '../helpers/temp-dir';
import { FaultyStore, Gate } from '../harness/faulty-store';
import { HostLedger } from '../harness/host-ledger';
import { until } from '../harness/until';

function lifecycle(id: string, status: string, payout: string): string {
  return `/impact/actions?${new URLSearchParams({ ActionId: id, Status: status, Payout: payout }).toString()}`;
}

function inquiryPostback(fields: Readonly<Record<string, string>>): string {
  return `/impact/inquiries?${new URLSearchParams({ ...INQUIRY, ...fields }).toString()}`;
}

interface InboxKind {
  readonly name: string;
  readonly create: (options?: { readonly retentionMs?: number }) => InboxStore<unknown>;
}

describe("one action's postbacks are applied in the order they were accepted", function () {
  this.timeout(20_000);
  const dir = useTempDir('impact-order-');
  const closing: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
  });
  // After the hook above: stores close before their schema is dropped.
  const schema = useTestSchema();

  const kinds: InboxKind[] = [
    {
      name: 'SqliteStore',
      create: (options = {}) => new SqliteStore({ path: path.join(dir(), 'postbacks.db'), ...options }),
    },
    {
      name: 'PostgresStore',
      create: (options = {}) =>
        new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name, ...options }),
    },
  ];

  for (const kind of kinds) {
    it(`${kind.name}: a dead row retried after later rows of its action were delivered never moves the action back`, async () => {
      const app = createApp<unknown>(
        { store: kind.create(), delivery: 'inbox', maxAttempts: 1, backoff: { baseMs: 10, maxMs: 20 } },
        { listen: false },
      );
      closing.push(() => app.postbacks.close());
      const ledger = new HostLedger();
      let failedOnce = false;
      app.postbacks.on('action', (event, ctx) => {
        if (event.payout === '7.00' && !failedOnce) {
          failedOnce = true;
          throw new Error('the ledger is down');
        }
        ledger.apply(event, ctx);
      });
      let dead = 0;
      app.postbacks.on('dead', () => void (dead += 1));
      await request(app.app)
        .get(lifecycle('8.1', 'PENDING', '5.00'))
        .expect(200);
      await request(app.app)
        .get(lifecycle('8.1', 'PENDING', '7.00'))
        .expect(200);
      await until(() => dead === 1);
      await request(app.app)
        .get(lifecycle('8.1', 'PENDING', '9.00'))
        .expect(200);
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 2);
      expect(await app.postbacks.inbox?.retry({ status: 'dead' })).to.equal(1);
      await until(async () => (await app.postbacks.inbox?.stats())?.pending === 0);
      await sleep(100);
      expect({
        stale: staleActions(app.events).map((event) => event.payout),
        changes: ledger.of('8.1').map((entry) => `${entry.from} → ${entry.to}`),
      }).to.deep.equal({
        stale: ['7.00'],
        changes: ['new → PENDING 5.00', 'PENDING 5.00 → PENDING 9.00'],
      });
    });
  }

  for (const kind of kinds) {
    it(`${kind.name}: a dead row's reversal retried after an older PENDING came late is delivered, never stale`, async () => {
      const app = createApp<unknown>(
        { store: kind.create(), delivery: 'inbox', maxAttempts: 1, backoff: { baseMs: 10, maxMs: 20 } },
        { listen: false },
      );
      closing.push(() => app.postbacks.close());
      const ledger = new HostLedger();
      let failing = true;
      app.postbacks.on('action', (event, ctx) => {
        if (failing && event.status === 'REVERSED') throw new Error('the ledger is down');
        ledger.apply(event, ctx);
      });
      let dead = 0;
      app.postbacks.on('dead', () => void (dead += 1));
      await request(app.app)
        .get(lifecycle('8.4', 'REVERSED', '5.00'))
        .expect(200);
      await until(() => dead === 1);
      // impact.com's retry of the PENDING it sent first (answered 503 then): arrives after the reversal.
      await request(app.app)
        .get(lifecycle('8.4', 'PENDING', '5.00'))
        .expect(200);
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 1);
      failing = false;
      expect(await app.postbacks.inbox?.retry({ status: 'dead' })).to.equal(1);
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 2);
      expect({
        stale: staleActions(app.events).map((event) => event.status),
        changes: ledger.of('8.4').map((entry) => `${entry.from} → ${entry.to}`),
      }).to.deep.equal({
        stale: [],
        changes: ['new → PENDING 5.00', 'PENDING 5.00 → REVERSED 5.00'],
      });
    });
  }

  for (const kind of kinds) {
    it(`${kind.name}: a dead approval retried once the journal forgot the later reversal is stale, not delivered`, async () => {
      const app = createApp<unknown>(
        {
          store: kind.create({ retentionMs: 400 }),
          delivery: 'inbox',
          maxAttempts: 1,
          backoff: { baseMs: 10, maxMs: 20 },
        },
        { listen: false },
      );
      closing.push(() => app.postbacks.close());
      let failing = true;
      const applied: string[] = [];
      app.postbacks.on('action', (event) => {
        if (failing && event.status === 'APPROVED') throw new Error('the ledger is down');
        applied.push(event.status ?? '');
      });
      let dead = 0;
      app.postbacks.on('dead', () => void (dead += 1));
      await request(app.app)
        .get(lifecycle('8.5', 'APPROVED', '5.00'))
        .expect(200);
      await until(() => dead === 1);
      await request(app.app)
        .get(lifecycle('8.5', 'REVERSED', '5.00'))
        .expect(200);
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 1);
      failing = false;
      // The journal's record of the reversal expires; the delivered row that overtook the approval is still kept.
      await sleep(500);
      expect(await app.postbacks.inbox?.retry({ status: 'dead' })).to.equal(1);
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 2);
      expect({ applied, stale: staleActions(app.events).map((event) => event.status) }).to.deep.equal({
        applied: ['REVERSED'],
        stale: ['APPROVED'],
      });
    });
  }

  for (const kind of kinds) {
    it(`${kind.name}: a dead row retried after reconciliation and a duplicate brought a newer state never moves the action back`, async () => {
      const api = new FakeActionsApi('IRtest', 'token');
      await api.start();
      closing.push(() => api.stop());
      const app = createApp<unknown>(
        { store: kind.create(), delivery: 'inbox', maxAttempts: 1, backoff: { baseMs: 10, maxMs: 20 } },
        { listen: false },
      );
      closing.push(() => app.postbacks.close());
      let failing = true;
      const applied: string[] = [];
      app.postbacks.on('action', (event) => {
        if (failing) throw new Error('the ledger is down');
        applied.push(`${event.trigger} ${event.status} ${event.payout}`);
      });
      let dead = 0;
      app.postbacks.on('dead', () => void (dead += 1));
      const full = (status: string, payout: string) =>
        `/impact/actions?${new URLSearchParams({ ActionId: '8.3', Status: status, Payout: payout, Amount: '100.00', Currency: 'USD' }).toString()}`;
      await request(app.app).get(full('PENDING', '5.00')).expect(200);
      await until(() => dead === 1);
      failing = false;
      api.put(apiAction('8.3', 'PENDING', '7.00'));
      await app.postbacks.reconcile({
        accountSid: 'IRtest',
        authToken: 'token',
        baseUrl: api.baseUrl,
        since: new Date(Date.now() - 24 * 60 * 60 * 1000),
      });
      // The lifecycle postback of the same state: a duplicate of what reconciliation delivered.
      await request(app.app).get(full('PENDING', '7.00')).expect(200);
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 1);
      await app.postbacks.inbox?.retry({ status: 'dead' });
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 2);
      const rows = (await app.postbacks.inbox?.list()) ?? [];
      expect({
        applied,
        stale: staleActions(app.events).map((event) => event.payout),
        // Newest first: the lifecycle 7.00, a duplicate; the retried 5.00, stale.
        outcomes: rows.map((row) => row.outcome),
      }).to.deep.equal({ applied: ['reconciliation PENDING 7.00'], stale: ['5.00'], outcomes: ['duplicate', 'stale'] });
    });
  }

  it('a late postback of an inquiry as created, after it was resolved, is stale: it never reopens the inquiry', async () => {
    const app = createApp({ store: new MemoryStore() }, { listen: false });
    closing.push(() => app.postbacks.close());
    const heard: string[] = [];
    const previous: (string | null)[] = [];
    app.postbacks.on('inquiry', (event, ctx) => {
      heard.push(`${event.state} ${event.resolutionStatus ?? ''}`);
      previous.push(ctx.previous?.state ?? null);
    });
    await request(app.app)
      .get(inquiryPostback({ ResolutionStatus: 'APPROVED', FinalPayout: '2.50' }))
      .expect(200);
    // impact.com's retry of the creation postback, which an outage had answered 503.
    await request(app.app)
      .get(inquiryPostback({ ResolutionStatus: 'UNRESOLVED' }))
      .expect(200);
    await request(app.app)
      .get(inquiryPostback({ ResolutionStatus: 'APPROVED', FinalPayout: '2.75' }))
      .expect(200);
    expect({
      heard,
      stale: app.events.stale.map((event) => (event.kind === 'inquiry' ? event.state : event.status)),
      previous,
    }).to.deep.equal({
      heard: ['resolved APPROVED', 'resolved APPROVED'],
      stale: ['created'],
      previous: [null, 'resolved'],
    });
  });

  for (const kind of kinds) {
    it(`${kind.name}: a dead row of an inquiry's creation, retried after it was resolved, never reopens it`, async () => {
      const app = createApp<unknown>(
        { store: kind.create(), delivery: 'inbox', maxAttempts: 1, backoff: { baseMs: 10, maxMs: 20 } },
        { listen: false },
      );
      closing.push(() => app.postbacks.close());
      let failing = true;
      const heard: string[] = [];
      app.postbacks.on('inquiry', (event) => {
        if (failing) throw new Error('the ledger is down');
        heard.push(event.state);
      });
      let dead = 0;
      app.postbacks.on('dead', () => void (dead += 1));
      await request(app.app)
        .get(inquiryPostback({ ResolutionStatus: 'UNRESOLVED' }))
        .expect(200);
      await until(() => dead === 1);
      failing = false;
      await request(app.app)
        .get(inquiryPostback({ ResolutionStatus: 'DECLINED' }))
        .expect(200);
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 1);
      expect(await app.postbacks.inbox?.retry({ status: 'dead' })).to.equal(1);
      await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 2);
      const rows = (await app.postbacks.inbox?.list()) ?? [];
      expect({ heard, outcomes: rows.map((row) => row.outcome) }).to.deep.equal({
        heard: ['resolved'],
        outcomes: ['delivered', 'stale'],
      });
    });
  }

  it('PostgresStore: rows of an action are delivered in the order their arrivals were answered, not of their ids', async function () {
    await requirePostgres(this);
    const gate = new Gate();
    const store = new FaultyStore(new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name }));
    // The worker waits until both have arrived.
    store.inject({ op: 'inbox.next', fault: { kind: 'pause', gate }, times: Infinity });
    const app = createApp<unknown>({ store, delivery: 'inbox' }, { listen: false });
    closing.push(async () => {
      gate.open();
      await app.postbacks.close();
    });
    const delivered: string[] = [];
    app.postbacks.on('action', (event) => void delivered.push(event.payout ?? ''));
    const accepted: string[] = [];

    // A slow arrival: its transaction has its row and id, and has not committed yet.
    const slow = await schema().pool.connect();
    try {
      const { inboxAdd } = objectsOf({ schema: schema().name, tablePrefix: 'impact_postbacks_' });
      await request(app.app)
        .get(lifecycle('0.0', 'PENDING', '1.00'))
        .expect(200); // the tables exist
      await slow.query('BEGIN');
      await slow.query(`SELECT ${inboxAdd}($1, $2, $3, $4, $5, $6, now(), $7, 60000)`, [
        'actions:slow-arrival',
        'action:8.2',
        'actions',
        'query',
        '127.0.0.1',
        '/impact/actions',
        JSON.stringify({ ActionId: '8.2', Status: 'PENDING', Payout: '5.00' }),
      ]);
      const quick = request(app.app)
        .get(lifecycle('8.2', 'PENDING', '7.00'))
        .then((res) => {
          accepted.push('7.00');
          return res.status;
        });
      await sleep(300);
      await slow.query('COMMIT');
      accepted.push('5.00');
      expect(await quick).to.equal(200);
    } finally {
      slow.release();
    }
    gate.open();
    await until(() => delivered.length === 3);
    expect(delivered.slice(1)).to.deep.equal(accepted);
  });
  it('a host whose own state is ahead of the journal (its listener failed after its write) keeps a final state when a late PENDING comes', async () => {
    const app = createApp({ store: new MemoryStore() }, { listen: false });
    closing.push(() => app.postbacks.close());
    const ledger = new HostLedger();
    let failAfterWrite = true;
    const previous: (string | null)[] = [];
    app.postbacks.on('action', (event, ctx) => {
      previous.push(ctx.previous?.status ?? null);
      ledger.apply(event, ctx);
      if (event.status === 'APPROVED' && failAfterWrite) {
        failAfterWrite = false;
        throw new Error('the host failed after its write');
      }
    });
    await request(app.app)
      .get(lifecycle('8.4', 'APPROVED', '5.00'))
      .expect(500);
    // The store recorded nothing: to it the late PENDING is the action's first state.
    await request(app.app)
      .get(lifecycle('8.4', 'PENDING', '5.00'))
      .expect(200);
    await request(app.app)
      .get(lifecycle('8.4', 'APPROVED', '5.00'))
      .expect(200);
    expect({
      previous,
      changes: ledger.of('8.4').map((entry) => `${entry.from} → ${entry.to}`),
      late: ledger.late,
      balance: ledger.balance('8.4'),
    }).to.deep.equal({
      previous: [null, null, 'PENDING'],
      // The approval delivered again has the first one's key (a final state's key names the state alone).
      changes: ['new → APPROVED 5.00'],
      late: 1,
      balance: 500,
    });
  });
});
