import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect } from 'chai';
import request from 'supertest';
import {
  MemoryStore,
  SqliteStore,
  type HistoryEntry,
  type HistoryLog,
  type NewHistoryEntry,
  type PostbackHistory,
  type PostbackStore,
} from '../lib';
import { createApp, type TestApp } from './helpers/create-app';
import { toQuery, TRACKED_ACTION } from './helpers/fixtures';
import { freshStoreKinds } from './helpers/fresh-stores';
import { historyFilter } from './helpers/history-filter';
import { apiAction, FakeActionsApi } from './helpers/fake-actions-api';
import { useStoreClock } from './helpers/store-clock';
import { MAX_MEMORY_HISTORY_CHARS, MemoryHistory } from '../lib/history/memory-history';

const SID = 'IRhistory';
const AUTH = 'history-auth-token-0123456789';

function historyOf(app: TestApp<unknown>): PostbackHistory {
  const { history } = app.postbacks;
  if (history === null) throw new Error('history is off');
  return history;
}

async function sendAction(app: TestApp<unknown>, fields: Record<string, string>): Promise<number> {
  const res = await request(app.app).get('/impact/actions').query(fields);
  return res.status;
}

function action(id: string, status: string, payout: string, extra: Record<string, string> = {}) {
  return {
    ActionId: id,
    Status: status,
    Payout: payout,
    Amount: '100.00',
    Currency: 'USD',
    SubId1: 'member-7',
    ...extra,
  };
}

/** Every entry, newest first, read page by page. */
async function everyEntry(history: PostbackHistory, limit = 2): Promise<HistoryEntry[]> {
  const entries: HistoryEntry[] = [];
  let cursor: string | null = null;
  do {
    const page = await history.list({ limit, ...(cursor === null ? {} : { cursor }) });
    entries.push(...page.entries);
    cursor = page.cursor;
  } while (cursor !== null);
  return entries;
}

/** A delivered postback's entry as a log receives it, without fields. */
function historyEntryFor(actionId: string, receivedAt: Date): NewHistoryEntry {
  return {
    trigger: 'postback',
    receivedAt,
    route: 'actions',
    format: 'query',
    ip: '192.0.2.1',
    path: '/impact/actions',
    outcome: 'delivered',
    status: 200,
    code: null,
    durationMs: 1,
    key: `actions:${actionId}`,
    subject: `action:${actionId}`,
    actionId,
    subId1: null,
    fields: null,
  };
}

/** Whether a router made, used and dropped without close() is garbage collected. */
async function droppedRouterCollected(): Promise<boolean> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const dropped = await (async () => {
    const used = createApp<unknown>();
    await request(used.app)
      .get(`/impact/actions?${toQuery(TRACKED_ACTION)}`)
      .expect(200);
    return new WeakRef(used.postbacks);
  })();
  for (let round = 0; round < 10 && dropped.deref() !== undefined; round += 1) {
    await sleep(20);
    gc();
  }
  return dropped.deref() === undefined;
}

function logOf(store: PostbackStore<unknown>): HistoryLog {
  if (store.history === undefined) throw new Error('this store keeps no history');
  return store.history;
}

for (const kind of freshStoreKinds('history')) {
  describe(`history with ${kind.name}`, () => {
    before(async function () {
      await kind.before?.(this);
    });
    after(async () => {
      await kind.after?.();
    });
    let app: TestApp<unknown>;
    afterEach(async () => {
      await app.postbacks.close();
    });

    it('records a delivered postback with what was received, the token left out', async () => {
      app = createApp<unknown>({ store: kind.create(), history: true, token: 'history-secret-token' });
      const status = await sendAction(app, { ...action('7001.1', 'PENDING', '5.00'), token: 'history-secret-token' });
      expect(status).to.equal(200);
      const { entries, cursor } = await historyOf(app).list();
      expect(cursor).to.equal(null);
      expect(entries).to.have.length(1);
      const [entry] = entries as [HistoryEntry];
      expect(entry).to.deep.include({
        trigger: 'postback',
        route: 'actions',
        format: 'query',
        ip: '127.0.0.1',
        path: '/impact/actions',
        outcome: 'delivered',
        status: 200,
        code: null,
        subject: 'action:7001.1',
        actionId: '7001.1',
        subId1: 'member-7',
      });
      expect(entry.key).to.equal(app.events.action[0]?.meta.key);
      expect(entry.receivedAt.getTime()).to.equal(app.events.action[0]?.meta.receivedAt.getTime());
      expect(entry.durationMs).to.be.a('number').and.at.least(0);
      expect(entry.fields).to.deep.equal({
        ActionId: '7001.1',
        Status: 'PENDING',
        Payout: '5.00',
        Amount: '100.00',
        Currency: 'USD',
        SubId1: 'member-7',
      });
      expect(JSON.stringify(entries)).not.to.include('history-secret-token');
    });

    it('records every outcome an answer can have, with its status and code', async () => {
      app = createApp<unknown>({
        store: kind.create(),
        history: true,
        allowedIps: ['127.0.0.1'],
        trustProxy: ['127.0.0.1'],
      });
      let fail = false;
      app.postbacks.on('action', () => {
        if (fail) throw new Error('the ledger is down');
      });
      expect(await sendAction(app, action('7002.1', 'APPROVED', '5.00'))).to.equal(200);
      expect(await sendAction(app, action('7002.1', 'APPROVED', '5.00'))).to.equal(200);
      expect(await sendAction(app, action('7002.1', 'PENDING', '5.00'))).to.equal(200);
      expect(await sendAction(app, action('7002.2', 'PENDING', 'five'))).to.equal(400);
      const forged = await request(app.app)
        .get('/impact/actions')
        .set('X-Forwarded-For', '203.0.113.9')
        .query(action('7002.3', 'PENDING', '5.00'));
      expect(forged.status).to.equal(403);
      fail = true;
      expect(await sendAction(app, action('7002.4', 'PENDING', '5.00'))).to.equal(500);
      const entries = await everyEntry(historyOf(app));
      expect(entries.map((entry) => [entry.outcome, entry.status, entry.code, entry.actionId])).to.deep.equal([
        ['failed', 500, 'listener.failed', '7002.4'],
        ['rejected', 403, 'ip.forbidden', null],
        ['rejected', 400, 'field.invalid', '7002.2'],
        ['stale', 200, null, '7002.1'],
        ['duplicate', 200, null, '7002.1'],
        ['delivered', 200, null, '7002.1'],
      ]);
      const [, forbidden, invalid] = entries as [HistoryEntry, HistoryEntry, HistoryEntry];
      // A refused sender's fields are never read; a refused postback's are kept, to show what was wrong.
      expect([forbidden.fields, forbidden.format, forbidden.key, forbidden.ip]).to.deep.equal([
        null,
        null,
        null,
        '203.0.113.9',
      ]);
      expect(invalid.fields).to.include({ Payout: 'five' });
      expect([invalid.format, invalid.key, invalid.subject, invalid.subId1]).to.deep.equal([
        'query',
        null,
        null,
        'member-7',
      ]);
    });

    it('counts entries by slice of time, route, outcome and code', async () => {
      app = createApp<unknown>({
        store: kind.create(),
        history: true,
        allowedIps: ['127.0.0.1'],
        trustProxy: ['127.0.0.1'],
      });
      const started = Date.now();
      for (const id of ['7009.1', '7009.2', '7009.3']) {
        expect(await sendAction(app, action(id, 'PENDING', '1.00'))).to.equal(200);
      }
      expect(await sendAction(app, action('7009.1', 'PENDING', '1.00'))).to.equal(200);
      expect(await sendAction(app, action('7009.4', 'PENDING', 'one'))).to.equal(400);
      const forged = await request(app.app)
        .get('/impact/actions')
        .set('X-Forwarded-For', '203.0.113.9')
        .query(action('7009.5', 'PENDING', '1.00'));
      expect(forged.status).to.equal(403);
      expect(
        (await request(app.app).get('/impact/inquiries').query({ InquiryId: '9', ResolutionStatus: 'UNRESOLVED' }))
          .status,
      ).to.equal(200);
      const sliceMs = 60_000;
      const { counts, partial, since } = await historyOf(app).counts({ since: new Date(started - 5000), sliceMs });
      expect(partial).to.equal(false);
      expect(since.getTime()).to.equal(started - 5000);
      const tally: Record<string, number> = {};
      for (const count of counts) {
        // Aligned on the epoch, from the slice holding `since` to the one holding now.
        expect(count.slice % sliceMs).to.equal(0);
        expect(count.slice).to.be.within(Math.floor((started - 5000) / sliceMs) * sliceMs, Date.now());
        const key = `${count.route} ${count.outcome} ${count.code ?? '-'}`;
        tally[key] = (tally[key] ?? 0) + count.count;
      }
      expect(tally).to.deep.equal({
        'actions delivered -': 3,
        'actions duplicate -': 1,
        'actions rejected field.invalid': 1,
        'actions rejected ip.forbidden': 1,
        'inquiries delivered -': 1,
      });
      const none = await historyOf(app).counts({ since: new Date(Date.now() + 60_000) });
      expect(none.counts).to.deep.equal([]);
    });

    it('filters by action, subId1, outcome, route, code and time, and pages with a stable cursor', async () => {
      app = createApp<unknown>({ store: kind.create(), history: {} });
      for (let n = 1; n <= 5; n += 1) {
        expect(await sendAction(app, action(`7003.${n}`, 'PENDING', '5.00', { SubId1: `m${n % 2}` }))).to.equal(200);
      }
      expect(await sendAction(app, action('7003.1', 'PENDING', 'x'))).to.equal(400);
      await request(app.app).get('/impact/inquiries').query({ InquiryId: 'Q1', ActionId: '7003.2' }).expect(200);
      const history = historyOf(app);
      const ids = async (query: Parameters<PostbackHistory['list']>[0]) =>
        (await history.list(query)).entries.map((entry) => `${entry.route}:${entry.actionId ?? ''}:${entry.outcome}`);
      expect(await ids({ actionId: '7003.1' })).to.deep.equal(['actions:7003.1:rejected', 'actions:7003.1:delivered']);
      expect(await ids({ subId1: 'm0' })).to.deep.equal(['actions:7003.4:delivered', 'actions:7003.2:delivered']);
      expect(await ids({ outcome: 'rejected' })).to.deep.equal(['actions:7003.1:rejected']);
      expect(await ids({ code: 'field.invalid' })).to.deep.equal(['actions:7003.1:rejected']);
      expect(await ids({ route: 'inquiries' })).to.deep.equal(['inquiries:7003.2:delivered']);
      expect(await ids({ since: new Date(Date.now() + 60_000) })).to.deep.equal([]);
      expect(await ids({ until: new Date(Date.now() - 60_000) })).to.deep.equal([]);

      // Pages of two, newest first: entries arriving meanwhile do not shift the pages after.
      const first = await history.list({ limit: 2 });
      expect(first.entries.map((entry) => entry.actionId)).to.deep.equal(['7003.2', '7003.1']);
      expect(await sendAction(app, action('7003.9', 'PENDING', '5.00'))).to.equal(200);
      const second = await history.list({ limit: 2, cursor: first.cursor ?? '' });
      expect(second.entries.map((entry) => entry.actionId)).to.deep.equal(['7003.5', '7003.4']);
      const rest = await history.list({ limit: 10, cursor: second.cursor ?? '' });
      expect(rest.entries.map((entry) => entry.actionId)).to.deep.equal(['7003.3', '7003.2', '7003.1']);
      expect(rest.cursor).to.equal(null);
    });

    // RedisStore prunes by the time an item was written, which an entry written now cannot predate.
    if (kind.name !== 'RedisStore') {
      it('prunes what retentionMs expired in batches, answering postbacks meanwhile', async function () {
        this.timeout(120_000);
        const store = kind.create();
        app = createApp<unknown>({ store, history: { retentionMs: 3_600_000 } });
        const log = logOf(store);
        const expired = Date.now() - 2 * 3_600_000;
        // In chunks: a PostgresStore lets at most 10,000 entries wait.
        let writes: unknown[] = [];
        for (let n = 0; n < 20_000; n += 1) {
          if (writes.length === 5000) {
            await Promise.all(writes);
            writes = [];
          }
          writes.push(
            log.append({ ...historyEntryFor(`old.${n}`, new Date(expired + n)), fields: { ActionId: `old.${n}` } }),
          );
        }
        await Promise.all(writes);
        expect(await sendAction(app, action('7009.1', 'PENDING', '1.00'))).to.equal(200);
        const history = historyOf(app);
        const finished: string[] = [];
        const pruning = history.prune().then((removed) => {
          finished.push('pruned');
          return removed;
        });
        const answered = sendAction(app, action('7009.2', 'PENDING', '1.00')).then((status) => {
          finished.push('answered');
          return status;
        });
        expect(await answered).to.equal(200);
        expect(await pruning).to.be.above(500);
        // The postback sent after pruning began was answered before pruning ended.
        expect(finished).to.deep.equal(['answered', 'pruned']);
        const left = await history.list({ limit: 1000 });
        expect(left.entries.map((entry) => entry.actionId)).to.deep.equal(['7009.2', '7009.1']);
      });
    }

    it('prunes entries received before a time, the oldest first, at most as many as asked', async () => {
      const store = kind.create();
      app = createApp<unknown>({ store, history: true });
      for (let n = 1; n <= 5; n += 1) {
        expect(await sendAction(app, action(`7008.${n}`, 'PENDING', '1.00'))).to.equal(200);
        // Apart in time: a store may prune by the time an entry was written, just after it arrived.
        await sleep(5);
      }
      const history = historyOf(app);
      const all = (await history.list()).entries;
      const cut = (all[1] as HistoryEntry).receivedAt;
      const older = all.filter((entry) => entry.receivedAt < cut).length;
      expect(older).to.be.at.least(1);
      expect(await logOf(store).prune(cut, 1)).to.equal(1);
      expect(await logOf(store).prune(cut, 100)).to.equal(older - 1);
      const left = (await history.list()).entries;
      expect(left.map((entry) => entry.id)).to.deep.equal(all.slice(0, all.length - older).map((entry) => entry.id));
    });

    describe('with the clock moved', () => {
      // The start of this minute: receivedAt is read from the real clock, a few seconds later.
      const clock = useStoreClock(Math.floor(Date.now() / 60_000) * 60_000);

      it('lists nothing older than retentionMs', async () => {
        app = createApp<unknown>({ store: kind.create(), history: { retentionMs: 3_600_000 } });
        clock.set(Date.now());
        expect(await sendAction(app, action('7005.1', 'PENDING', '1.00'))).to.equal(200);
        const history = historyOf(app);
        expect((await history.list()).entries).to.have.length(1);
        // An hour and a minute later (receivedAt is read a few ms after the clock was set).
        clock.advance(3_660_000);
        expect((await history.list()).entries).to.have.length(0);
      });
    });

    describe('an action timeline', () => {
      let api: FakeActionsApi;
      beforeEach(async () => {
        api = new FakeActionsApi(SID, AUTH);
        await api.start();
      });
      afterEach(async () => {
        await api.stop();
      });

      it('reads PENDING → modified → REVERSED back in order, with a duplicate, a stale PENDING and a reconciliation', async () => {
        app = createApp<unknown>({ store: kind.create(), history: true });
        const id = '7006.1';
        expect(await sendAction(app, action(id, 'PENDING', '5.00'))).to.equal(200);
        expect(await sendAction(app, action(id, 'PENDING', '5.00'))).to.equal(200);
        expect(await sendAction(app, action(id, 'PENDING', '4.00'))).to.equal(200);
        api.put(apiAction(id, 'APPROVED', '4.00'));
        const report = await app.postbacks.reconcile({
          accountSid: SID,
          authToken: AUTH,
          since: new Date(Date.now() - 86_400_000),
          baseUrl: api.baseUrl,
        });
        expect(report).to.include({ changed: 1, delivered: 1 });
        expect(await sendAction(app, action(id, 'PENDING', '4.00', { Note: 'late retry' }))).to.equal(200);
        expect(await sendAction(app, action(id, 'REVERSED', '0.00'))).to.equal(200);
        expect(await sendAction(app, action('7006.2', 'PENDING', '1.00'))).to.equal(200);

        const timeline = await historyOf(app).action(id);
        // A reconciled action's fields are the API's (State, not Status).
        const stateOf = (entry: HistoryEntry) => entry.fields?.['Status'] ?? entry.fields?.['State'];
        expect(
          timeline.entries.map((entry) => [entry.trigger, entry.outcome, stateOf(entry), entry.fields?.['Payout']]),
        ).to.deep.equal([
          ['postback', 'delivered', 'PENDING', '5.00'],
          ['postback', 'duplicate', 'PENDING', '5.00'],
          ['postback', 'delivered', 'PENDING', '4.00'],
          ['reconciliation', 'delivered', 'APPROVED', '4.00'],
          ['postback', 'stale', 'PENDING', '4.00'],
          ['postback', 'delivered', 'REVERSED', '0.00'],
        ]);
        const reconciled = timeline.entries[3] as HistoryEntry;
        expect([reconciled.format, reconciled.status, reconciled.ip, reconciled.subject]).to.deep.equal([
          'api',
          null,
          null,
          `action:${id}`,
        ]);
        expect(timeline.state).to.include({ status: 'REVERSED', payout: '0.00', trigger: 'lifecycle' });
        const ids = timeline.entries.map((entry) => Number(entry.id));
        expect(ids).to.deep.equal([...ids].sort((a, b) => a - b));
        expect(await historyOf(app).action('7006.404')).to.deep.equal({ state: null, entries: [] });
      });
    });
  });
}

describe('history', () => {
  let app: TestApp<unknown>;
  afterEach(async () => {
    await app.postbacks.close();
  });

  async function expectTypeError(call: () => Promise<unknown>, query: unknown, message: RegExp): Promise<void> {
    let caught: unknown;
    try {
      await call();
    } catch (error) {
      caught = error;
    }
    expect(caught, JSON.stringify(query)).to.be.instanceOf(TypeError);
    expect((caught as Error).message).to.match(message);
  }

  it('refuses a query it cannot answer with a TypeError naming the option', async () => {
    app = createApp<unknown>({ history: true });
    const history = historyOf(app);
    const refusals: [unknown, RegExp][] = [
      [{ limit: 0 }, /limit must be a whole number from 1 to 1000/],
      [{ limit: 1001 }, /limit/],
      [{ outcome: 'lost' }, /outcome must be one of delivered, duplicate/],
      [{ route: 'orders' }, /route must be one of/],
      [{ code: 'nope' }, /code must be one of/],
      [{ since: '2026-01-01' }, /since must be a valid Date/],
      [{ until: new Date(Number.NaN) }, /until must be a valid Date/],
      [{ cursor: 'abc' }, /cursor must be a cursor that list\(\) gave/],
      [{ actionId: '' }, /actionId must be a non-empty string/],
      [{ action: '1' }, /action must be left out: it is not a filter/],
      ['all', /the query must be an object/],
    ];
    for (const [query, message] of refusals) {
      await expectTypeError(() => history.list(query as Parameters<PostbackHistory['list']>[0]), query, message);
    }
    const countRefusals: [unknown, RegExp][] = [
      [{ sliceMs: 1000 }, /sliceMs must be a whole number of ms from 60,000 to 86,400,000/],
      [{ sliceMs: 90_000.5 }, /sliceMs/],
      [{ since: 'yesterday' }, /since must be a valid Date/],
    ];
    for (const [query, message] of countRefusals) {
      await expectTypeError(() => history.counts(query as Parameters<PostbackHistory['counts']>[0]), query, message);
    }
  });

  it('is on by default, null with history: false, and the option is checked at setup', async () => {
    app = createApp<unknown>({ history: false });
    expect(app.postbacks.history).to.equal(null);
    const byDefault = createApp<unknown>();
    await request(byDefault.app)
      .get(`/impact/actions?${toQuery(TRACKED_ACTION)}`)
      .expect(200);
    const { entries } = await (byDefault.postbacks.history as PostbackHistory).list();
    expect(entries.map((entry) => [entry.outcome, entry.actionId])).to.deep.equal([
      ['delivered', TRACKED_ACTION.ActionId],
    ]);
    void byDefault.postbacks.close();
    expect(() => createApp({ history: { retentionMs: 10 } })).to.throw(
      TypeError,
      /option history.retentionMs must be an integer from 60000/,
    );
    expect(() => createApp({ history: { maxRejectedPerMinute: -1 } })).to.throw(
      TypeError,
      /option history.maxRejectedPerMinute/,
    );
    expect(() => createApp({ history: { retention: 1 } as never })).to.throw(
      TypeError,
      /unknown option history.retention/,
    );
    expect(() => createApp({ history: 'yes' as never })).to.throw(
      TypeError,
      /option history must be true, false or an object/,
    );
    expect(() => new MemoryStore({ historyEntries: 0 })).to.throw(TypeError, /option historyEntries/);
  });

  it('keeps what the request sent, the token taken out, and reads the fields back from it', async () => {
    // A store whose log keeps what it is given, to see it as a log of one's own would.
    const given: NewHistoryEntry[] = [];
    const inner = new MemoryHistory();
    const log: HistoryLog = {
      append: (entry) => {
        given.push(entry);
        inner.append(entry);
      },
      list: (filter) => inner.list(filter),
      prune: (before, limit) => inner.prune(before, limit),
    };
    const store = Object.assign(new MemoryStore(), { history: log });
    app = createApp<unknown>({ store, token: 'history-secret-token' });
    const get = await request(app.app)
      .get(`/impact/actions?${toQuery(action('7011.1', 'PENDING', '5.00'))}&%74oken=history-secret-token`)
      .expect(200);
    expect(get.headers['x-postback-outcome']).to.equal('delivered');
    const post = await request(app.app)
      .post('/impact/actions?token=history-secret-token&SubId2=from-the-url')
      .set('Content-Type', 'application/json')
      .send('{"ActionId":"7011.2","Status":"PENDING","Payout":27.750,"SubId1":"member-7"}')
      .expect(200);
    expect(post.headers['x-postback-outcome']).to.equal('delivered');
    const [first, second] = given as [NewHistoryEntry, NewHistoryEntry];
    expect(first.sent?.query).to.equal(toQuery(action('7011.1', 'PENDING', '5.00')));
    expect(second.sent).to.deep.equal({
      query: 'SubId2=from-the-url',
      body: '{"ActionId":"7011.2","Status":"PENDING","Payout":27.750,"SubId1":"member-7"}',
    });
    expect(JSON.stringify(given.map((entry) => entry.sent))).not.to.include('history-secret-token');
    // A log of one's own gets the fields as a plain property, which a spread or JSON keeps.
    expect({ ...first }.fields).to.deep.equal({
      ActionId: '7011.1',
      Status: 'PENDING',
      Payout: '5.00',
      Amount: '100.00',
      Currency: 'USD',
      SubId1: 'member-7',
    });
    expect((JSON.parse(JSON.stringify(second)) as HistoryEntry).fields).to.include({
      Payout: '27.750',
      SubId2: 'from-the-url',
    });
    const { entries } = await historyOf(app).list();
    // Parsed again as the receiver read them: the URL's fields first, JSON numbers as sent.
    expect(entries.map((entry) => entry.fields)).to.deep.equal([
      { SubId2: 'from-the-url', ActionId: '7011.2', Status: 'PENDING', Payout: '27.750', SubId1: 'member-7' },
      { ActionId: '7011.1', Status: 'PENDING', Payout: '5.00', Amount: '100.00', Currency: 'USD', SubId1: 'member-7' },
    ]);
    expect(Object.isFrozen(entries[0]?.fields)).to.equal(true);
  });

  it('lets a router dropped without close() be collected, its pruning timer too', async () => {
    app = createApp<unknown>();
    const collected = await droppedRouterCollected();
    expect(collected).to.equal(true);
  });

  it('keeps at most 16 million characters of sent text in memory, the oldest entries going first', () => {
    app = createApp<unknown>();
    const log = new MemoryHistory();
    const body = 'x'.repeat(MAX_MEMORY_HISTORY_CHARS / 4);
    const at = new Date();
    for (let n = 1; n <= 6; n += 1) {
      log.append(
        Object.assign(historyEntryFor(`7012.${n}`, at), { format: 'form' as const, sent: { query: '', body } }),
      );
    }
    const filter = historyFilter({ limit: 100 });
    expect(log.list(filter).map((entry) => entry.actionId)).to.deep.equal(['7012.6', '7012.5', '7012.4', '7012.3']);
    // Entries without the text sent (a body a host parser read, deliveries) count their fields'
    // keys and values: four such entries are a little over the budget.
    const records = new MemoryHistory();
    for (let n = 1; n <= 6; n += 1) {
      records.append({ ...historyEntryFor(`7012.${n}`, at), fields: { Note: body } });
    }
    expect(records.list(filter).map((entry) => entry.actionId)).to.deep.equal(['7012.6', '7012.5', '7012.4']);
  });

  it('keeps the newest entries of a MemoryStore, as many as historyEntries', async () => {
    app = createApp<unknown>({ history: true, store: new MemoryStore({ historyEntries: 3 }) });
    for (let n = 1; n <= 5; n += 1) expect(await sendAction(app, action(`7004.${n}`, 'PENDING', '1.00'))).to.equal(200);
    const entries = await everyEntry(historyOf(app));
    expect(entries.map((entry) => entry.actionId)).to.deep.equal(['7004.5', '7004.4', '7004.3']);
  });

  describe('with the clock moved', () => {
    // The start of this minute: receivedAt is read from the real clock, a few seconds later.
    const clock = useStoreClock(Math.floor(Date.now() / 60_000) * 60_000);

    it('stores at most maxRejectedPerMinute of a flood of 10,000 refused postbacks and counts the rest', async function () {
      this.timeout(120_000);
      app = createApp<unknown>({ allowedIps: ['192.0.2.1'], history: { maxRejectedPerMinute: 600 } });
      const agent = request(app.app);
      for (let batch = 0; batch < 100; batch += 1) {
        await Promise.all(
          Array.from({ length: 100 }, async (_, n) => {
            await agent
              .get('/impact/actions')
              .query({ ActionId: `flood.${batch}.${n}` })
              .expect(403);
          }),
        );
      }
      const history = historyOf(app);
      expect(history.stats()).to.deep.equal({ notStored: 9_400 });
      const stored = await everyEntry(history, 1000);
      expect(stored).to.have.length(600);
      expect(stored.every((entry) => entry.code === 'ip.forbidden')).to.equal(true);
      // A new minute, a new budget.
      clock.advance(60_000);
      await agent.get('/impact/actions').query({ ActionId: 'flood.next' }).expect(403);
      expect((await history.list({ limit: 1000 })).entries).to.have.length(601);
      expect(history.stats()).to.deep.equal({ notStored: 9_400 });
    });

    it('counts failures in the same budget: a flood sent while the router closes is not all stored', async () => {
      app = createApp<unknown>({ history: { maxRejectedPerMinute: 2 } });
      await app.postbacks.close();
      const agent = request(app.app);
      for (let n = 0; n < 5; n += 1)
        await agent
          .get('/impact/actions')
          .query({ ActionId: `closing.${n}` })
          .expect(503);
      const history = historyOf(app);
      const { entries } = await history.list();
      expect(entries.map((entry) => [entry.outcome, entry.code])).to.deep.equal([
        ['failed', 'router.closed'],
        ['failed', 'router.closed'],
      ]);
      expect(history.stats()).to.deep.equal({ notStored: 3 });
      // Entries are frozen: what one reader does to them, the next does not see.
      expect(Object.isFrozen(entries[0])).to.equal(true);
    });
  });

  describe('with the inbox', () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'impact-history-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('records the arrival as stored and the inbox delivery after it', async () => {
      app = createApp<unknown>({
        history: true,
        store: new SqliteStore({ path: path.join(dir, 'inbox.db') }),
        delivery: 'inbox',
      });
      expect(await sendAction(app, action('7007.1', 'PENDING', '2.50'))).to.equal(200);
      const history = historyOf(app);
      let entries: readonly HistoryEntry[] = [];
      for (let wait = 0; wait < 200 && entries.length < 2; wait += 1) {
        entries = (await history.list({ actionId: '7007.1' })).entries;
        if (entries.length < 2) await sleep(25);
      }
      expect(entries.map((entry) => [entry.trigger, entry.outcome, entry.status])).to.deep.equal([
        ['inbox', 'delivered', null],
        ['postback', 'stored', 200],
      ]);
      const [delivery, arrival] = entries as [HistoryEntry, HistoryEntry];
      expect(delivery.key).to.equal(arrival.key);
      expect(delivery.receivedAt.getTime()).to.equal(arrival.receivedAt.getTime());
      expect(delivery.fields).to.deep.equal(arrival.fields);
    });
  });
});
