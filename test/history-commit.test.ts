import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import request from 'supertest';
import { createPostbackRouter, PostgresStore, SqliteStore, type PostbackHistory } from '../lib';
import { createApp, type TestApp } from './helpers/create-app';
import { historyFilter } from './helpers/history-filter';
import { toQuery } from './helpers/fixtures';
import { createTestSchema, DATABASE_URL, requirePostgres, type TestSchema } from './helpers/services';

function action(id: string): Record<string, string> {
  return { ActionId: id, Status: 'PENDING', Payout: '1.00', SubId1: 'member-9' };
}

async function send(app: TestApp<unknown>, id: string): Promise<request.Response> {
  return request(app.app).get(`/impact/actions?${toQuery(action(id))}`);
}

/** The action's timeline as `<outcome> <status>`, oldest first. */
async function timeline(app: TestApp<unknown>, id: string): Promise<string[]> {
  const { entries } = await (app.postbacks.history as PostbackHistory).action(id);
  return entries.map((entry) => `${entry.outcome} ${String(entry.status)}`);
}

/** The messages of the causes of the history entries that could not be written, as they come. */
function historyFailures(app: TestApp<unknown>): string[] {
  const causes: string[] = [];
  app.postbacks.on('error', (error: Error) => {
    if (error.message === 'a history entry could not be written') causes.push((error.cause as Error).message);
  });
  return causes;
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Runs a full garbage collection. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe("history written with the postback's own commit", () => {
  let app: TestApp<unknown> | undefined;
  afterEach(async () => {
    await app?.postbacks.close();
    app = undefined;
  });

  describe('SqliteStore', () => {
    let dir = '';
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'impact-history-commit-'));
    });
    after(() => rm(dir, { recursive: true, force: true }));

    it('has the entry in the file with the 2xx; an entry that cannot be written fails the commit, which is made again with it', async () => {
      const file = path.join(dir, 'store.db');
      app = createApp<unknown>({ store: new SqliteStore({ path: file }) });
      const db = new Database(file);
      try {
        const rows = (id: string): unknown[] =>
          db.prepare('SELECT outcome, status FROM postback_history WHERE action_id = ? ORDER BY id').all(id);
        expect((await send(app, '7013.1')).status).to.equal(200);
        // Read straight from the file, no flush in between: the commit wrote it.
        expect(rows('7013.1')).to.deep.equal([{ outcome: 'delivered', status: 200 }]);

        // The history table refuses this action's entry: the commit it is part of fails whole.
        db.exec(`CREATE TRIGGER refuse_7013_2 BEFORE INSERT ON postback_history
          WHEN NEW.action_id = '7013.2' AND NEW.outcome = 'delivered'
          BEGIN SELECT RAISE(ABORT, 'history refused'); END`);
        const refused = await send(app, '7013.2');
        expect([refused.status, refused.text]).to.deep.equal([
          503,
          'store.failed: the store failed to record the postback; retry later',
        ]);
        const keyCount = (): unknown => db.prepare('SELECT count(*) AS n FROM postback_keys').get();
        expect(keyCount()).to.deep.equal({ n: 1 });
        expect(db.prepare("SELECT * FROM postback_journal WHERE subject = 'action:7013.2'").all()).to.deep.equal([]);

        // SQLite's claims are not transactions: the listener's work is done, so the commit is
        // tried again, with its entry, until it lands.
        db.exec('DROP TRIGGER refuse_7013_2');
        await waitFor(() => rows('7013.2').length === 2, 'the commit made again');
        expect(keyCount()).to.deep.equal({ n: 2 });
        const retried = await send(app, '7013.2');
        expect([retried.status, retried.headers['x-postback-outcome']]).to.deep.equal([200, 'duplicate']);
        expect(app.events.action.filter((event) => event.actionId === '7013.2')).to.have.length(1);
        expect(await timeline(app, '7013.2')).to.deep.equal(['failed 503', 'delivered 200', 'duplicate 200']);
      } finally {
        db.close();
      }
    });

    it('writes an inbox arrival’s entry with its row, and a duplicate arrival’s apart', async () => {
      const file = path.join(dir, 'inbox.db');
      app = createApp<unknown>({ store: new SqliteStore({ path: file }), delivery: 'inbox' });
      const db = new Database(file, { readonly: true });
      try {
        expect((await send(app, '7015.1')).headers['x-postback-outcome']).to.equal('stored');
        expect(
          db.prepare("SELECT trigger, outcome FROM postback_history WHERE action_id = '7015.1' ORDER BY id").all(),
        ).to.deep.include({ trigger: 'postback', outcome: 'stored' });
        expect((await send(app, '7015.1')).headers['x-postback-outcome']).to.equal('duplicate');
        await waitFor(async () => (await timeline(app as TestApp<unknown>, '7015.1')).length === 3, 'the delivery');
        const { entries } = await (app.postbacks.history as PostbackHistory).action('7015.1');
        expect(entries.map((entry) => `${entry.trigger} ${entry.outcome}`).sort()).to.deep.equal([
          'inbox delivered',
          'postback duplicate',
          'postback stored',
        ]);
      } finally {
        db.close();
      }
    });
    it('keeps no request alive through the events a host keeps', async () => {
      const postbacks = createPostbackRouter({
        allowedIps: ['127.0.0.1'],
        store: new SqliteStore({ path: path.join(dir, 'retain.db') }),
      });
      const kept: unknown[] = [];
      // A host that batches events keeps them after their answer.
      postbacks.on('action', (event) => void kept.push(event));
      const handler = postbacks.nodeHandler({ basePath: '/impact' });
      const requests: WeakRef<object>[] = [];
      const server = http.createServer((req, res) => {
        requests.push(new WeakRef(req), new WeakRef(res));
        handler(req, res);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = server.address() as { port: number };
        for (let n = 0; n < 20; n += 1) {
          const answer = await fetch(`http://127.0.0.1:${port}/impact/actions?${toQuery(action(`7017.${n}`))}`, {
            headers: { connection: 'close' },
          });
          expect(answer.status).to.equal(200);
          await answer.text();
        }
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
      for (let round = 0; round < 10 && requests.some((ref) => ref.deref() !== undefined); round += 1) {
        await sleep(20);
        collectGarbage();
      }
      expect(kept).to.have.length(20);
      expect(requests.filter((ref) => ref.deref() !== undefined)).to.have.length(0);
      await postbacks.close();
    });

    it('reads, with create: false, a history table an earlier version made', async () => {
      const file = path.join(dir, 'earlier.db');
      app = createApp<unknown>({ store: new SqliteStore({ path: file }) });
      expect((await send(app, '7018.1')).status).to.equal(200);
      await app.postbacks.close();
      // As an earlier version made it: without the columns of the text sent.
      const db = new Database(file);
      db.exec(
        'ALTER TABLE postback_history DROP COLUMN sent_query; ALTER TABLE postback_history DROP COLUMN sent_body',
      );
      db.close();
      const looking = new SqliteStore({ path: file, create: false });
      try {
        const entries = looking.history?.list(historyFilter({ actionId: '7018.1' }));
        expect(entries?.map((entry) => [entry.outcome, entry.fields])).to.deep.equal([['delivered', null]]);
      } finally {
        looking.close();
      }
      // A router on it, its store made with create: false too, still takes postbacks; their
      // entries fail with a message that says what to do.
      app = createApp<unknown>({ store: new SqliteStore({ path: file, create: false }) });
      const causes = historyFailures(app);
      expect((await send(app, '7018.3')).status).to.equal(200);
      await waitFor(() => causes.length > 0, 'the entry to fail');
      expect(causes[0]).to.include('open the file once with a SqliteStore that may create');
      await app.postbacks.close();
      // A store that may create adds the columns, and writes the text again.
      app = createApp<unknown>({ store: new SqliteStore({ path: file }) });
      expect((await send(app, '7018.2')).status).to.equal(200);
      const { entries } = await (app.postbacks.history as PostbackHistory).action('7018.2');
      expect(entries.map((entry) => entry.fields?.['ActionId'])).to.deep.equal(['7018.2']);
    });
  });

  describe('PostgresStore', () => {
    let schema: TestSchema | undefined;
    before(async function () {
      await requirePostgres(this);
      schema = await createTestSchema();
    });
    after(async () => schema?.drop());

    it('has the entry in the table with the 2xx; an entry that cannot be written rolls the commit back, listeners’ writes included', async () => {
      const { name, pool } = schema as TestSchema;
      await pool.query(`CREATE TABLE "${name}".ledger (action_id text PRIMARY KEY)`);
      app = createApp<unknown>({
        store: new PostgresStore({ connectionString: DATABASE_URL, schema: name, tablePrefix: 'hc_' }),
      });
      app.postbacks.on('action', async (event, ctx) => {
        const client = ctx.transaction as { query(text: string, values: unknown[]): Promise<unknown> };
        await client.query(`INSERT INTO "${name}".ledger VALUES ($1)`, [event.actionId]);
      });
      const rows = async (id: string): Promise<unknown[]> =>
        (await pool.query(`SELECT outcome, status FROM "${name}".hc_history WHERE action_id = $1 ORDER BY id`, [id]))
          .rows as unknown[];
      expect((await send(app, '7014.1')).status).to.equal(200);
      expect(await rows('7014.1')).to.deep.equal([{ outcome: 'delivered', status: 200 }]);

      await pool.query(`CREATE FUNCTION "${name}".refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.action_id = '7014.2' AND NEW.outcome = 'delivered' THEN RAISE EXCEPTION 'history refused'; END IF;
          RETURN NEW;
        END $$`);
      await pool.query(
        `CREATE TRIGGER refuse BEFORE INSERT ON "${name}".hc_history FOR EACH ROW EXECUTE FUNCTION "${name}".refuse()`,
      );
      const refused = await send(app, '7014.2');
      expect([refused.status, refused.text]).to.deep.equal([
        503,
        'store.failed: the store failed to record the postback; retry later',
      ]);
      const ledger = async (): Promise<unknown[]> =>
        (await pool.query(`SELECT action_id FROM "${name}".ledger ORDER BY action_id`)).rows as unknown[];
      expect(await ledger()).to.deep.equal([{ action_id: '7014.1' }]);
      const journal = await pool.query(`SELECT 1 FROM "${name}".hc_journal WHERE subject = 'action:7014.2'`);
      expect(journal.rowCount).to.equal(0);

      await pool.query(`DROP TRIGGER refuse ON "${name}".hc_history`);
      const retried = await send(app, '7014.2');
      expect([retried.status, retried.headers['x-postback-outcome']]).to.deep.equal([200, 'delivered']);
      expect(await ledger()).to.deep.equal([{ action_id: '7014.1' }, { action_id: '7014.2' }]);
      expect(await timeline(app, '7014.2')).to.deep.equal(['failed 503', 'delivered 200']);
    });

    it('takes a subId1 too long for its index: the entry is kept, found by its action, not by that subId1', async () => {
      const { name } = schema as TestSchema;
      app = createApp<unknown>({
        store: new PostgresStore({ connectionString: DATABASE_URL, schema: name, tablePrefix: 'hl_' }),
      });
      expect((await send(app, '7019.1')).status).to.equal(200);
      // 1,000 characters of 3 bytes each: over the 2,704 bytes a B-tree index entry holds.
      const long = '\u4e00\u4e8c\u4e09'.repeat(334).slice(0, 1000);
      const answer = await request(app.app).get(`/impact/actions?${toQuery({ ...action('7019.2'), SubId1: long })}`);
      expect(answer.status).to.equal(200);
      expect(app.events.action.filter((event) => event.actionId === '7019.2')).to.have.length(1);
      const { entries } = await (app.postbacks.history as PostbackHistory).action('7019.2');
      expect(entries.map((entry) => [entry.outcome, entry.subId1, entry.fields?.['SubId1']])).to.deep.equal([
        ['delivered', null, long],
      ]);
      // No rule checks an inquiry's subId1: 2,000 bytes, a raw U+0000 every fifth character, which
      // PostgreSQL's text cannot hold (kept as U+FFFD, of three bytes) and text that does not compress.
      let seed = 7;
      const random = (): string => String.fromCharCode(33 + ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % 90));
      const withNul = Array.from({ length: 400 }, () => `${random()}${random()}${random()}${random()}\u0000`).join('');
      const inquiry = await request(app.app)
        .get('/impact/inquiries')
        .query({ InquiryId: '7019.3', ResolutionStatus: 'UNRESOLVED', SubId1: withNul });
      expect(inquiry.status).to.equal(200);
      const { entries: inquiries } = await (app.postbacks.history as PostbackHistory).list({ route: 'inquiries' });
      expect(inquiries.map((entry) => [entry.outcome, entry.subId1])).to.deep.equal([['delivered', null]]);
    });

    it('reads, with create: false, a history table an earlier version made', async () => {
      const { name, pool } = schema as TestSchema;
      const options = { connectionString: DATABASE_URL, schema: name, tablePrefix: 'he_' };
      app = createApp<unknown>({ store: new PostgresStore(options) });
      expect((await send(app, '7020.1')).status).to.equal(200);
      await app.postbacks.close();
      await pool.query(`ALTER TABLE "${name}".he_history DROP COLUMN sent_query, DROP COLUMN sent_body`);
      const looking = new PostgresStore({ ...options, create: false });
      try {
        const entries = await looking.history.list(historyFilter({ actionId: '7020.1' }));
        expect(entries.map((entry) => [entry.outcome, entry.fields])).to.deep.equal([['delivered', null]]);
      } finally {
        await looking.close();
      }
      // A router whose store may not create still takes postbacks; their entries fail with a
      // message that says what to do.
      app = createApp<unknown>({ store: new PostgresStore({ ...options, create: false }) });
      const causes = historyFailures(app);
      expect((await send(app, '7020.3')).status).to.equal(200);
      await waitFor(() => causes.length > 0, 'the entry to fail');
      expect(causes[0]).to.include(
        'lacks the columns sent_query and sent_body; add them with: impact-postbacks migrate',
      );
      await app.postbacks.close();
      app = createApp<unknown>({ store: new PostgresStore(options) });
      expect((await send(app, '7020.2')).status).to.equal(200);
      const { entries } = await (app.postbacks.history as PostbackHistory).action('7020.2');
      expect(entries.map((entry) => entry.fields?.['ActionId'])).to.deep.equal(['7020.2']);
    });

    it('writes an inbox arrival’s entry in the statement that stores its row', async () => {
      const { name, pool } = schema as TestSchema;
      app = createApp<unknown>({
        store: new PostgresStore({ connectionString: DATABASE_URL, schema: name, tablePrefix: 'hi_' }),
        delivery: 'inbox',
      });
      // The first postback makes sure of the tables; from then on, arrivals write their entries.
      expect((await send(app, '7016.0')).headers['x-postback-outcome']).to.equal('stored');
      expect((await send(app, '7016.1')).headers['x-postback-outcome']).to.equal('stored');
      const stored = await pool.query(
        `SELECT trigger, outcome FROM "${name}".hi_history WHERE action_id = '7016.1' AND outcome = 'stored'`,
      );
      expect(stored.rows).to.deep.equal([{ trigger: 'postback', outcome: 'stored' }]);
      expect((await send(app, '7016.1')).headers['x-postback-outcome']).to.equal('duplicate');
      await waitFor(async () => (await timeline(app as TestApp<unknown>, '7016.1')).length === 3, 'the delivery');
      const { entries } = await (app.postbacks.history as PostbackHistory).action('7016.1');
      expect(entries.map((entry) => `${entry.trigger} ${entry.outcome}`).sort()).to.deep.equal([
        'inbox delivered',
        'postback duplicate',
        'postback stored',
      ]);
    });
  });
});
