import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import request from 'supertest';
import {
  PostgresStore,
  SqliteStore,
  isPostbackError,
  type ActionEvent,
  type ActionState,
  type PostbackStore,
  type ReconcileReport,
} from '../lib';
import { createApp, type TestApp } from './helpers/create-app';
import { freshStoreKinds } from './helpers/fresh-stores';
import { apiAction, FakeActionsApi } from './helpers/fake-actions-api';
import { DATABASE_URL, useTestSchema } from './helpers/services';

const SID = 'IRtest';
const TOKEN = 'sEcReT-auth-token-0123456789';
const DAY_MS = 24 * 60 * 60 * 1000;

/** A lifecycle postback as impact.com would send it by GET. */
async function postback(app: TestApp<unknown>, id: string, status: string, payout: string): Promise<number> {
  const res = await request(app.app)
    .get('/impact/actions')
    .query({ ActionId: id, Status: status, Payout: payout, Amount: '100.00', Currency: 'USD' });
  return res.status;
}

/** Every listener's view of a delivered action: the event and its ctx.previous. */
function recordContexts(app: TestApp<unknown>): { event: ActionEvent; previous: ActionState | null }[] {
  const seen: { event: ActionEvent; previous: ActionState | null }[] = [];
  app.postbacks.on('action', (event, ctx) => {
    seen.push({ event, previous: ctx.previous });
  });
  return seen;
}

function counts(report: ReconcileReport): Omit<ReconcileReport, 'pages' | 'requests'> {
  const { pages: _pages, requests: _requests, ...rest } = report;
  return rest;
}

for (const kind of freshStoreKinds('reconcile')) {
  describe(`reconcile() with ${kind.name}`, function () {
    let api: FakeActionsApi;
    let store: PostbackStore<unknown>;
    let app: TestApp<unknown>;
    const now = Date.now();
    const options = () => ({
      accountSid: SID,
      authToken: TOKEN,
      since: new Date(now - 2 * DAY_MS),
      baseUrl: api.baseUrl,
    });

    before(async function () {
      await kind.before?.(this);
    });
    after(async () => {
      await kind.after?.();
    });
    beforeEach(async () => {
      api = new FakeActionsApi(SID, TOKEN);
      await api.start();
      store = kind.create();
      app = createApp<unknown>({ store });
    });
    afterEach(async () => {
      await app.postbacks.close();
      await api.stop();
      // The auth token reaches impact.com's API only: no event, error or rejection carries it.
      expect(JSON.stringify(app.events)).not.to.include(TOKEN);
      for (const error of app.events.error) expect(`${error.stack ?? ''}${String(error.cause)}`).not.to.include(TOKEN);
    });

    it('delivers actions no postback brought, once, as missing, with trigger reconciliation', async () => {
      const contexts = recordContexts(app);
      api.put(apiAction('1000.1.1', 'PENDING', '5.00'));
      api.put(apiAction('1000.1.2', 'APPROVED', '7.50'));
      api.put(apiAction('1000.1.3', 'REVERSED', '0.00'));
      const report = await app.postbacks.reconcile(options());
      expect(report).to.deep.equal({
        checked: 3,
        missing: 3,
        changed: 0,
        overtaken: 0,
        unchanged: 0,
        stale: 0,
        delivered: 3,
        failed: 0,
        pages: 1,
        requests: 1,
      });
      expect(app.events.action.map((event) => [event.actionId, event.status, event.payout])).to.have.deep.members([
        ['1000.1.1', 'PENDING', '5.00'],
        ['1000.1.2', 'APPROVED', '7.50'],
        ['1000.1.3', 'REVERSED', '0.00'],
      ]);
      for (const { event, previous } of contexts) {
        expect(event.trigger).to.equal('reconciliation');
        expect(event.meta.format).to.equal('api');
        expect(event.meta.path).to.equal(`/Mediapartners/${SID}/Actions/${event.actionId}`);
        expect(event.meta.key).to.match(/^reconciliation:/);
        expect(event.campaignName).to.equal('Example Brand');
        expect(event.eventDate?.toISOString()).to.equal('2026-11-02T18:00:00.000Z');
        expect(previous).to.equal(null);
      }
      const request = api.requests[0];
      expect(request?.authorization).to.equal(`Basic ${Buffer.from(`${SID}:${TOKEN}`).toString('base64')}`);
      expect(request?.accept).to.equal('application/json');
      expect(request?.query['PageSize']).to.equal('1000');
    });

    it('delivers a reversal that never came as a postback as changed, ctx.previous showing the old state', async () => {
      const contexts = recordContexts(app);
      expect(await postback(app, '1000.2.1', 'PENDING', '5.00')).to.equal(200);
      api.put(apiAction('1000.2.1', 'REVERSED', '0.00'));
      const report = await app.postbacks.reconcile(options());
      expect(counts(report)).to.deep.equal({
        checked: 1,
        missing: 0,
        changed: 1,
        overtaken: 0,
        unchanged: 0,
        stale: 0,
        delivered: 1,
        failed: 0,
      });
      const last = contexts.at(-1);
      expect(last?.event.status).to.equal('REVERSED');
      expect(last?.event.trigger).to.equal('reconciliation');
      expect(last?.previous).to.include({ status: 'PENDING', payout: '5.00', currency: 'USD', trigger: 'lifecycle' });
    });

    it('delivers a payout-only change of a final action as changed (APPROVED 5.00 known, APPROVED 7.00 at impact.com)', async () => {
      const contexts = recordContexts(app);
      expect(await postback(app, '1000.2.2', 'APPROVED', '5.00')).to.equal(200);
      api.put(apiAction('1000.2.2', 'APPROVED', '7.00'));
      const report = await app.postbacks.reconcile(options());
      expect(report).to.include({ checked: 1, changed: 1, unchanged: 0, delivered: 1 });
      const last = contexts.at(-1);
      expect([last?.event.status, last?.event.payout, last?.event.trigger]).to.deep.equal([
        'APPROVED',
        '7.00',
        'reconciliation',
      ]);
      expect(last?.previous).to.include({ status: 'APPROVED', payout: '5.00' });
    });

    it('leaves actions postbacks delivered alone (amounts compared as decimals), and a PENDING for a final action is stale', async () => {
      expect(await postback(app, '1000.3.1', 'APPROVED', '5.00')).to.equal(200);
      expect(await postback(app, '1000.3.2', 'PENDING', '2.50')).to.equal(200);
      expect(await postback(app, '1000.3.3', 'APPROVED', '9.00')).to.equal(200);
      api.put(apiAction('1000.3.1', 'APPROVED', '5.0'));
      api.put(apiAction('1000.3.2', 'PENDING', '2.50', { Amount: '100' }));
      api.put(apiAction('1000.3.3', 'PENDING', '9.00'));
      const report = await app.postbacks.reconcile(options());
      expect(counts(report)).to.deep.equal({
        checked: 3,
        missing: 0,
        changed: 0,
        overtaken: 0,
        unchanged: 2,
        stale: 1,
        delivered: 0,
        failed: 0,
      });
      expect(app.events.action.filter((event) => event.trigger === 'reconciliation')).to.have.length(0);
    });

    it('delivers nothing on a second run, and a postback carrying a delivered state later is a duplicate', async () => {
      api.put(apiAction('1000.4.1', 'APPROVED', '5.00'));
      api.put(apiAction('1000.4.2', 'PENDING', '3.00'));
      const first = await app.postbacks.reconcile(options());
      expect(first.delivered).to.equal(2);
      const second = await app.postbacks.reconcile(options());
      expect(counts(second)).to.deep.equal({
        checked: 2,
        missing: 0,
        changed: 0,
        overtaken: 0,
        unchanged: 2,
        stale: 0,
        delivered: 0,
        failed: 0,
      });
      expect(app.events.action).to.have.length(2);

      // The lost postbacks arrive after all: their states are applied already.
      expect(await postback(app, '1000.4.1', 'APPROVED', '5.00')).to.equal(200);
      expect(await postback(app, '1000.4.2', 'PENDING', '3.00')).to.equal(200);
      expect(app.events.action).to.have.length(2);
      expect(app.events.duplicate.map((event) => (event as ActionEvent).actionId)).to.deep.equal([
        '1000.4.1',
        '1000.4.2',
      ]);
      // What no reconciliation delivered is delivered: a modification, then a late PENDING is stale.
      expect(await postback(app, '1000.4.2', 'PENDING', '3.50')).to.equal(200);
      expect(app.events.action.at(-1)).to.include({ actionId: '1000.4.2', payout: '3.50', trigger: 'lifecycle' });
      expect(await postback(app, '1000.4.1', 'PENDING', '5.00')).to.equal(200);
      expect(app.events.stale.map((event) => event.actionId)).to.deep.equal(['1000.4.1']);
      expect(app.events.action).to.have.length(3);
    });

    it('waits out a 429 in the middle and finishes with the right counts', async () => {
      for (let i = 1; i <= 5; i += 1) api.put(apiAction(`1000.5.${i}`, 'PENDING', `${i}.00`));
      api.failPage(2, 429, 1, '0');
      api.failPage(3, 429, 1);
      const started = Date.now();
      const report = await app.postbacks.reconcile({ ...options(), pageSize: 2 });
      expect(report).to.deep.equal({
        checked: 5,
        missing: 5,
        changed: 0,
        overtaken: 0,
        unchanged: 0,
        stale: 0,
        delivered: 5,
        failed: 0,
        pages: 3,
        requests: 5,
      });
      // No X-RateLimit-Reset on the second 429: a backoff of a second.
      expect(Date.now() - started).to.be.at.least(900);
      expect(api.requests.map((request) => [request.query['Page'], request.status])).to.deep.equal([
        ['1', 200],
        ['2', 429],
        ['2', 200],
        ['3', 429],
        ['3', 200],
      ]);
      expect(new Set(app.events.action.map((event) => event.actionId)).size).to.equal(5);
    });

    it('rejects on a 500 for page 2 having delivered nothing of it; the next run completes', async () => {
      for (let i = 1; i <= 4; i += 1) api.put(apiAction(`1000.6.${i}`, 'PENDING', `${i}.00`));
      api.failPage(2, 500);
      const error: unknown = await app.postbacks.reconcile({ ...options(), pageSize: 2 }).then(
        () => null,
        (caught: unknown) => caught,
      );
      expect(isPostbackError(error) && error.code).to.equal('reconcile.http');
      expect(String(error)).to.match(/answered 500, reading page 2 of /);
      expect(`${String(error)} ${(error as Error).stack ?? ''} ${JSON.stringify(error)}`).not.to.include(TOKEN);
      // Newest first: page 1 holds 1000.6.4 and 1000.6.3.
      expect(app.events.action.map((event) => event.actionId).sort()).to.deep.equal(['1000.6.3', '1000.6.4']);

      const report = await app.postbacks.reconcile({ ...options(), pageSize: 2 });
      expect(counts(report)).to.deep.equal({
        checked: 4,
        missing: 2,
        changed: 0,
        overtaken: 0,
        unchanged: 2,
        stale: 0,
        delivered: 2,
        failed: 0,
      });
      expect(app.events.action.map((event) => event.actionId).sort()).to.deep.equal([
        '1000.6.1',
        '1000.6.2',
        '1000.6.3',
        '1000.6.4',
      ]);
    });

    it('cuts a range over 45 days into windows of at most 45 days', async () => {
      const until = new Date(now);
      const since = new Date(now - 100 * DAY_MS);
      api.put(apiAction('1000.7.1', 'APPROVED', '1.00'), new Date(now - 90 * DAY_MS));
      api.put(apiAction('1000.7.2', 'APPROVED', '2.00'), new Date(now - 50 * DAY_MS));
      api.put(apiAction('1000.7.3', 'PENDING', '3.00'), new Date(now - DAY_MS));
      const report = await app.postbacks.reconcile({ ...options(), since, until });
      expect(report).to.include({ checked: 3, missing: 3, delivered: 3, pages: 3, requests: 3 });
      const ranges = api.requests.map((request) => [
        Date.parse(request.query['StartDate'] ?? ''),
        Date.parse(request.query['EndDate'] ?? ''),
      ]);
      expect(ranges).to.have.length(3);
      expect(ranges[0]?.[0]).to.equal(Math.floor(since.getTime() / 1000) * 1000);
      expect(ranges.at(-1)?.[1]).to.equal(Math.ceil(until.getTime() / 1000) * 1000);
      for (const [index, [start, end]] of ranges.entries()) {
        expect((end as number) - (start as number)).to.be.at.most(45 * DAY_MS);
        if (index > 0) expect(start).to.equal(ranges[index - 1]?.[1]);
      }
      expect(api.requests.every((request) => request.status === 200)).to.equal(true);
    });

    it('rejects an answer that is not an Actions list, and a 401, with codes that name what happened', async () => {
      api.put(apiAction('1000.8.1', 'PENDING', '1.00'));
      api.failPage(1, 200);
      const invalid: unknown = await app.postbacks.reconcile(options()).catch((caught: unknown) => caught);
      expect(isPostbackError(invalid) && invalid.code).to.equal('reconcile.invalid');
      expect(String(invalid)).to.include('no "Actions" list');
      const unauthorized: unknown = await app.postbacks
        .reconcile({ ...options(), authToken: 'wrong-token' })
        .catch((caught: unknown) => caught);
      expect(isPostbackError(unauthorized) && unauthorized.code).to.equal('reconcile.http');
      expect(String(unauthorized)).to.include('answered 401');
      expect(String(unauthorized)).not.to.include('wrong-token');
      expect(app.events.action).to.have.length(0);
    });
  });
}

describe('reconcile() around the store and the router', () => {
  let api: FakeActionsApi;
  beforeEach(async () => {
    api = new FakeActionsApi(SID, TOKEN);
    await api.start();
  });
  afterEach(async () => {
    await api.stop();
  });
  const options = () => ({
    accountSid: SID,
    authToken: TOKEN,
    since: new Date(Date.now() - DAY_MS),
    baseUrl: api.baseUrl,
  });

  it('counts a listener that fails as failed and delivers that action on the next run', async () => {
    const app = createApp();
    let fail = true;
    app.postbacks.on('action', () => {
      if (fail) throw new Error('ledger down');
    });
    api.put(apiAction('1000.9.1', 'APPROVED', '4.00'));
    expect(await app.postbacks.reconcile(options())).to.include({ missing: 1, delivered: 0, failed: 1 });
    expect(app.events.error.map((error) => error.code)).to.include('listener.failed');
    fail = false;
    expect(await app.postbacks.reconcile(options())).to.include({ missing: 1, delivered: 1, failed: 0 });
    expect(await app.postbacks.reconcile(options())).to.include({ unchanged: 1, delivered: 0 });
  });

  it('close() stops a run between two actions of a page: nothing is delivered once the receiver closed', async () => {
    const app = createApp({}, { listen: false });
    for (let index = 1; index <= 5; index += 1) api.put(apiAction(`1000.13.${index}`, 'APPROVED', '1.00'));
    const delivered: string[] = [];
    let closed: Promise<void> | undefined;
    app.postbacks.on('action', (event: ActionEvent) => {
      delivered.push(event.actionId);
      // The receiver shuts down while the first action of the page is delivered.
      closed ??= app.postbacks.close();
    });
    const error: unknown = await app.postbacks.reconcile(options()).catch((caught: unknown) => caught);
    await closed;
    expect({
      code: isPostbackError(error) ? error.code : String(error),
      delivered,
      errors: app.events.error.map((reported) => reported.code),
    }).to.deep.equal({ code: 'router.closed', delivered: delivered.slice(0, 1), errors: [] });
    expect(delivered).to.have.length(1);
  });

  it('refuses options it cannot use with a TypeError naming the option', async () => {
    const app = createApp();
    const attempt = (changes: Record<string, unknown>) =>
      app.postbacks.reconcile({ ...options(), ...changes }).then(
        () => 'resolved',
        (error: unknown) => (error instanceof TypeError ? error.message : `not a TypeError: ${String(error)}`),
      );
    expect(await attempt({ accountSid: '' })).to.match(/option accountSid/);
    expect(await attempt({ authToken: undefined })).to.match(/option authToken/);
    expect(await attempt({ since: new Date('nope') })).to.match(/option since/);
    expect(await attempt({ until: new Date(Date.now() - 2 * DAY_MS) })).to.match(/option until/);
    expect(await attempt({ baseUrl: 'ftp://example.com' })).to.match(/option baseUrl/);
    expect(await attempt({ pageSize: 0 })).to.match(/option pageSize/);
    expect(api.requests).to.have.length(0);
  });

  it('rejects with reconcile.http when the API does not answer within timeoutMs', async () => {
    const app = createApp();
    api.put(apiAction('1000.12.1', 'APPROVED', '1.00'));
    api.delayMs = 1000;
    const started = Date.now();
    const error: unknown = await app.postbacks
      .reconcile({ ...options(), timeoutMs: 200 })
      .catch((caught: unknown) => caught);
    expect(isPostbackError(error) && error.code).to.equal('reconcile.http');
    expect(String(error)).to.include('did not answer within 200 ms, reading page 1 of');
    expect(Date.now() - started).to.be.below(900);
    expect(app.events.action).to.have.length(0);
  });

  it('refuses a store without a readable journal', async () => {
    const app = createApp({ store: { begin: () => 'handled' as const } });
    const error: unknown = await app.postbacks.reconcile(options()).catch((caught: unknown) => caught);
    expect(error).to.be.instanceOf(TypeError);
    expect((error as Error).message).to.match(/option store/);
  });

  describe('with PostgresStore', function () {
    const testSchema = useTestSchema();

    it('lets listeners write through ctx.transaction, and rolls a failed delivery back with the journal', async () => {
      const store = new PostgresStore({ connectionString: DATABASE_URL, schema: testSchema().name });
      const app = createApp<unknown>({ store }, { listen: false });
      await testSchema().pool.query(
        `CREATE TABLE "${testSchema().name}".ledger (action_id text, status text, payout numeric)`,
      );
      let failOn: string | null = '1000.10.2';
      app.postbacks.on('action', async (event, ctx) => {
        const client = ctx.transaction as { query(text: string, values: unknown[]): Promise<unknown> };
        await client.query(`INSERT INTO "${testSchema().name}".ledger VALUES ($1, $2, $3)`, [
          event.actionId,
          event.status,
          event.payout,
        ]);
        if (event.actionId === failOn) throw new Error('refused after writing');
      });
      api.put(apiAction('1000.10.1', 'APPROVED', '1.00'));
      api.put(apiAction('1000.10.2', 'APPROVED', '2.00'));
      expect(await app.postbacks.reconcile(options())).to.include({ missing: 2, delivered: 1, failed: 1 });
      const ledger = async () =>
        (
          await testSchema().pool.query(`SELECT action_id FROM "${testSchema().name}".ledger ORDER BY action_id`)
        ).rows.map((row: { action_id: string }) => row.action_id);
      expect(await ledger()).to.deep.equal(['1000.10.1']);
      failOn = null;
      expect(await app.postbacks.reconcile(options())).to.include({ missing: 1, unchanged: 1, delivered: 1 });
      expect(await ledger()).to.deep.equal(['1000.10.1', '1000.10.2']);
      await app.postbacks.close();
    });
  });

  it("works beside delivery: 'inbox' (SqliteStore): reconciled actions are delivered at once", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'impact-reconcile-inbox-'));
    const app = createApp({ store: new SqliteStore({ path: path.join(dir, 'inbox.db') }), delivery: 'inbox' });
    try {
      api.put(apiAction('1000.11.1', 'APPROVED', '1.00'));
      expect(await app.postbacks.reconcile(options())).to.include({ missing: 1, delivered: 1 });
      expect(app.events.action.map((event) => event.trigger)).to.deep.equal(['reconciliation']);
    } finally {
      await app.postbacks.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
