import { expect } from 'chai';
import request from 'supertest';
import { MemoryStore, type JournalRecord } from '../../lib';
import { buildEvent } from '../../lib/fields/build-event';
import { compileFieldIndex } from '../../lib/fields/field-names';
import { ACTION_FIELDS } from '../../lib/fields/field-specs';
import { normalizeFields } from '../../lib/fields/normalize-fields';
import { idempotencyKeyOf } from '../../lib/journal/journal';
import { createApp } from '../helpers/create-app';
import { apiAction, FakeActionsApi } from '../helpers/fake-actions-api';
import type { ActionEvent } from '../../lib';

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
    const keys = [
      idempotencyKeyOf(reversed, pending5),
      idempotencyKeyOf(actionEvent({ ActionId: '1.1', Status: 'APPROVED', Payout: '5.00' }), pending5),
      idempotencyKeyOf(actionEvent({ ActionId: '1.1', Status: 'PENDING', Payout: '7.00' }), pending5),
      // The same state reached again later, from another record: a new change (5 → 7 → 5).
      idempotencyKeyOf(reversed, { ...pending5, key: 'actions:pending-7' }),
      idempotencyKeyOf(reversed, null),
      idempotencyKeyOf(actionEvent({ ActionId: '1.1', Status: 'REVERSED', Payout: '5.00' }, 'clearing'), pending5),
      idempotencyKeyOf(actionEvent({ ActionId: '1.2', Status: 'REVERSED', Payout: '5.00' }), pending5),
    ];
    expect(new Set(keys).size).to.equal(keys.length);
    expect(keys[0]).to.match(/^action:1\.1:[\w-]{43}$/);
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
