import { expect } from 'chai';
import request from 'supertest';
import path from 'node:path';
import { MemoryStore, SqliteStore, type JournalRecord } from '../../lib';
import { buildEvent } from '../../lib/fields/build-event';
import { compileFieldIndex } from '../../lib/fields/field-names';
import { ACTION_FIELDS } from '../../lib/fields/field-specs';
import { normalizeFields } from '../../lib/fields/normalize-fields';
import { idempotencyKeyOf } from '../../lib/journal/journal';
import { createApp } from '../helpers/create-app';
import { apiAction, FakeActionsApi } from '../helpers/fake-actions-api';
import type { ActionEvent } from '../../lib';
import { useTempDir } from '../helpers/temp-dir';
import { until } from '../harness/until';

const SID = 'IRtest';
const TOKEN = 'auth-token-for-tests';
const INDEX = compileFieldIndex(ACTION_FIELDS, new Map());

/** An action event as the router builds it from a postback's fields on a route. */
function actionEvent(
  fields: Record<string, string>,
  route: 'actions' | 'clearing' = 'actions',
  key = 'k',
): ActionEvent {
  const received = Object.assign(Object.create(null) as Record<string, string>, fields);
  const meta = { receivedAt: new Date(0), ip: '', format: 'query', route, path: '', key } as const;
  return buildEvent(route, normalizeFields(received, INDEX), received, meta) as ActionEvent;
}

const pending5: JournalRecord = {
  status: 'PENDING',
  payout: '5.00',
  amount: '100.00',
  currency: 'USD',
  trigger: 'lifecycle',
  key: 'actions:pending-5',
  receivedAt: '2026-11-01T00:00:00.000Z',
};

describe('ctx.idempotencyKey: one key for one change, however it comes', () => {
  const dir = useTempDir('impact-idempotency-');
  const closing: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
  });

  it('is the same for a postback and for reconciliation finding the same change, whatever the template leaves out', async function () {
    this.timeout(10_000);
    const api = new FakeActionsApi(SID, TOKEN);
    await api.start();
    try {
      for (const fields of [
        { Payout: '5.00', Amount: '100.00', Currency: 'USD' },
        { Payout: '5.00' },
        { Payout: '5.0', Amount: '100.00' },
      ]) {
        const id = `K.${Object.keys(fields).length}.${fields.Payout}`;
        // One process ran the postback's listener and died before the store recorded it...
        const first = createApp({ store: new MemoryStore() });
        let fromPostback = '';
        first.postbacks.on('action', (_event, ctx) => void (fromPostback = ctx.idempotencyKey));
        await request(first.app)
          .get(`/impact/actions?${new URLSearchParams({ ActionId: id, Status: 'PENDING', ...fields }).toString()}`)
          .expect(200);
        // ...so reconciliation, in another, finds the action missing and delivers the same change.
        const second = createApp({ store: new MemoryStore() });
        let fromReconciliation = '';
        second.postbacks.on('action', (event, ctx) => {
          if (event.actionId === id) fromReconciliation = ctx.idempotencyKey;
        });
        api.put(apiAction(id, 'PENDING', '5.00'));
        await second.postbacks.reconcile({
          accountSid: SID,
          authToken: TOKEN,
          baseUrl: api.baseUrl,
          since: new Date(Date.now() - 24 * 60 * 60 * 1000),
        });
        expect(fromReconciliation, JSON.stringify(fields)).to.equal(fromPostback);
      }
    } finally {
      await api.stop();
    }
  });

  it('is the same for a retry of one postback, and for one arriving in another format', () => {
    const one = actionEvent({ ActionId: '1.1', Status: 'REVERSED', Payout: '5.00' }, 'actions', 'a');
    const again = actionEvent({ action_id: '1.1', status: 'reversed', payout: '5.00' }, 'actions', 'b');
    expect(idempotencyKeyOf(again, pending5)).to.equal(idempotencyKeyOf(one, pending5));
  });

  it('differs for every other change: another state, another state moved from, a clearing, another action', () => {
    const reversed = actionEvent({ ActionId: '1.1', Status: 'REVERSED', Payout: '5.00' });
    const pending9 = actionEvent({ ActionId: '1.1', Status: 'PENDING', Payout: '9.00' });
    const keys = [
      idempotencyKeyOf(reversed, pending5),
      idempotencyKeyOf(actionEvent({ ActionId: '1.1', Status: 'APPROVED', Payout: '5.00' }), pending5),
      idempotencyKeyOf(actionEvent({ ActionId: '1.1', Status: 'PENDING', Payout: '7.00' }), pending5),
      idempotencyKeyOf(pending9, pending5),
      // The same state reached again later, from another record: a new change (9 → 7 → 9).
      idempotencyKeyOf(pending9, { ...pending5, payout: '7.00', key: 'actions:pending-7' }),
      idempotencyKeyOf(pending9, null),
      idempotencyKeyOf(actionEvent({ ActionId: '1.1', Status: 'REVERSED', Payout: '5.00' }, 'clearing'), pending5),
      idempotencyKeyOf(actionEvent({ ActionId: '1.2', Status: 'REVERSED', Payout: '5.00' }), pending5),
    ];
    expect(new Set(keys).size).to.equal(keys.length);
    expect(keys[0]).to.match(/^action:1\.1:[\w-]{43}$/);
  });

  it('is one key for a move into a final state, whatever it moves from and whatever payout it carries', () => {
    // An action is approved or reversed once: the state it moved from may differ between two
    // deliveries of that move (an older PENDING applied in between, a crash before the record).
    const reversed = actionEvent({ ActionId: '1.1', Status: 'REVERSED', Payout: '5.00' });
    const keys = new Set([
      idempotencyKeyOf(reversed, pending5),
      idempotencyKeyOf(reversed, { ...pending5, payout: '7.00', key: 'actions:pending-7' }),
      idempotencyKeyOf(reversed, null),
      idempotencyKeyOf(actionEvent({ ActionId: '1.1', Status: 'REVERSED', Payout: '0.00' }), pending5),
    ]);
    expect(keys.size).to.equal(1);
  });

  it('is the same for a final state delivered again after an older PENDING was applied in between', async () => {
    const app = createApp<unknown>(
      {
        store: new SqliteStore({ path: path.join(dir(), 'postbacks.db') }),
        delivery: 'inbox',
        maxAttempts: 1,
        backoff: { baseMs: 10, maxMs: 20 },
      },
      { listen: false },
    );
    closing.push(() => app.postbacks.close());
    const approvals: string[] = [];
    let mailerDown = true;
    // The credit is written; a second listener (a mailer) fails after it: the row dies.
    app.postbacks.on('action', (event, ctx) => {
      if (event.status === 'APPROVED') approvals.push(ctx.idempotencyKey);
    });
    app.postbacks.on('action', (event) => {
      if (mailerDown && event.status === 'APPROVED') throw new Error('the mailer is down');
    });
    let dead = 0;
    app.postbacks.on('dead', () => void (dead += 1));
    const lifecycle = (status: string) =>
      `/impact/actions?${new URLSearchParams({ ActionId: '1.5', Status: status, Payout: '5.00' }).toString()}`;
    await request(app.app).get(lifecycle('APPROVED')).expect(200);
    await until(() => dead === 1);
    // impact.com's retry of the PENDING it sent first.
    await request(app.app).get(lifecycle('PENDING')).expect(200);
    await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 1);
    mailerDown = false;
    await app.postbacks.inbox?.retry({ status: 'dead' });
    await until(async () => (await app.postbacks.inbox?.stats())?.delivered === 2);
    expect({ deliveries: approvals.length, keys: new Set(approvals).size }).to.deep.equal({ deliveries: 2, keys: 1 });
  });

  it("is a catalog postback's dedupe key", () => {
    const received = Object.assign(Object.create(null) as Record<string, string>, { CatalogItemId: '9' });
    const meta = {
      receivedAt: new Date(0),
      ip: '',
      format: 'query',
      route: 'catalog',
      path: '',
      key: 'catalog:x',
    } as const;
    const event = buildEvent('catalog', normalizeFields(received, compileFieldIndex([], new Map())), received, meta);
    expect(idempotencyKeyOf(event, null)).to.equal('catalog:x');
  });
});
