import { expect } from 'chai';
import request from 'supertest';
import { MemoryStore, PostgresStore, type PostbackStore } from '../../lib';
import { createApp } from '../helpers/create-app';
import { apiAction } from '../helpers/fake-actions-api';
import { DATABASE_URL, requirePostgres, useTestSchema } from '../helpers/services';
import { Gate } from '../harness/faulty-store';
import { HostLedger } from '../harness/host-ledger';
import { until } from '../harness/until';
import { lifecycle, useReconciliation } from '../harness/impact';

interface Kind {
  readonly name: string;
  readonly create: () => PostbackStore<unknown>;
}

describe('reconciliation decides under the claim, not from the page it read', function () {
  this.timeout(20_000);
  const { api, closing, options: reconcileOptions } = useReconciliation();
  // After the hook above: stores close before their schema is dropped.
  const schema = useTestSchema();

  const kinds: Kind[] = [
    { name: 'MemoryStore', create: () => new MemoryStore() },
    {
      name: 'PostgresStore',
      create: () => new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name }),
    },
  ];

  /**
   * A receiver whose reconciliation delivers action 0.1 first, its listener waiting at a gate,
   * and the action under test after it: a postback of that action can come in between its page
   * being read and its delivery.
   */
  function receiver(kind: Kind) {
    const gate = new Gate();
    const app = createApp<unknown>({ store: kind.create() });
    closing.push(() => app.postbacks.close());
    const ledger = new HostLedger();
    app.postbacks.on('action', async (event, ctx) => {
      if (event.actionId === '0.1') await gate.wait();
      ledger.apply(event, ctx);
    });
    // Listed newest first: the one put last comes first.
    const listFirst = () => {
      api.put(apiAction('0.1', 'PENDING', '1.00'));
    };
    const reconcile = () => app.postbacks.reconcile(reconcileOptions());
    return { ...app, gate, ledger, reconcile, listFirst };
  }

  for (const kind of kinds) {
    it(`${kind.name}: a reversal that a postback applied after the page was read is not delivered again`, async function () {
      if (kind.name === 'PostgresStore') await requirePostgres(this);
      const { app, gate, ledger, events, reconcile, listFirst } = receiver(kind);
      await request(app)
        .get(lifecycle('4.1', 'PENDING', '5.00'))
        .expect(200);
      api.put(apiAction('4.1', 'REVERSED', '5.00'));
      listFirst();
      const reconciling = reconcile();
      await gate.reached(1);
      await request(app)
        .get(lifecycle('4.1', 'REVERSED', '5.00'))
        .expect(200);
      gate.open();
      const report = await reconciling;
      expect({
        reversals: events.action.filter((event) => event.status === 'REVERSED').length,
        delivered: report.delivered - 1,
        changes: ledger.of('4.1').map((entry) => `${entry.from} → ${entry.to}`),
      }).to.deep.equal({
        reversals: 1,
        delivered: 0,
        changes: ['new → PENDING 5.00', 'PENDING 5.00 → REVERSED 5.00'],
      });
    });

    it(`${kind.name}: an older state the API listed never overwrites a newer one a postback brought meanwhile`, async function () {
      if (kind.name === 'PostgresStore') await requirePostgres(this);
      const { app, gate, ledger, reconcile, listFirst } = receiver(kind);
      await request(app)
        .get(lifecycle('4.2', 'PENDING', '5.00'))
        .expect(200);
      api.put(apiAction('4.2', 'PENDING', '7.00'));
      listFirst();
      const reconciling = reconcile();
      await gate.reached(1);
      await request(app)
        .get(lifecycle('4.2', 'PENDING', '9.00'))
        .expect(200);
      gate.open();
      const report = await reconciling;
      expect({
        delivered: report.delivered - 1,
        balance: ledger.balance('4.2'),
        last: ledger.of('4.2').at(-1)?.to,
      }).to.deep.equal({ delivered: 0, balance: 900, last: 'PENDING 9.00' });
    });

    it(`${kind.name}: a newer state a postback brought while the API was still answering is not overwritten by the API's`, async function () {
      if (kind.name === 'PostgresStore') await requirePostgres(this);
      const { app, ledger, reconcile } = receiver(kind);
      await request(app)
        .get(lifecycle('4.3', 'PENDING', '5.00'))
        .expect(200);
      // impact.com read the action before the modification: its answer is older than the postback.
      api.put(apiAction('4.3', 'PENDING', '7.00'));
      api.delayMs = 300;
      const requestsBefore = api.requests.length;
      const reconciling = reconcile();
      await until(() => api.requests.length > requestsBefore);
      await request(app)
        .get(lifecycle('4.3', 'PENDING', '9.00'))
        .expect(200);
      const report = await reconciling;
      expect({
        report: { changed: report.changed, overtaken: report.overtaken, delivered: report.delivered },
        balance: ledger.balance('4.3'),
        last: ledger.of('4.3').at(-1)?.to,
      }).to.deep.equal({
        report: { changed: 1, overtaken: 1, delivered: 0 },
        balance: 900,
        last: 'PENDING 9.00',
      });
    });

    it(`${kind.name}: a record stamped by a clock ahead of this one does not keep reconciliation from delivering`, async function () {
      if (kind.name === 'PostgresStore') await requirePostgres(this);
      const store = kind.create();
      const app = createApp<unknown>({ store });
      closing.push(() => app.postbacks.close());
      const delivered: string[] = [];
      app.postbacks.on('action', (event) => void delivered.push(`${event.trigger} ${event.status}`));
      // Recorded by another instance whose clock runs an hour ahead.
      const claim = await store.begin('actions:ahead', 'action:4.4');
      if (typeof claim === 'string') throw new Error(`no claim: ${claim}`);
      await claim.commit(
        {
          status: 'PENDING',
          payout: '5.00',
          trigger: 'lifecycle',
          key: 'actions:ahead',
          receivedAt: new Date(Date.now() + 60 * 60 * 1000).toISOString(),
        },
        'delivered',
      );
      api.put(apiAction('4.4', 'REVERSED', '5.00'));
      const report = await app.postbacks.reconcile(reconcileOptions());
      expect({ overtaken: report.overtaken, delivered }).to.deep.equal({
        overtaken: 0,
        delivered: ['reconciliation REVERSED'],
      });
    });
  }
});
