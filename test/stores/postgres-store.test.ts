import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { expect } from 'chai';
import pg from 'pg';
import request from 'supertest';
import { PostgresStore, type PgClient } from '../../lib';
import { createApp, errorCode } from '../helpers/create-app';
import { createTestSchema, DATABASE_URL, requirePostgres, type TestSchema } from '../helpers/services';
import { startTcpProxy } from '../helpers/tcp-proxy';

const BIN = path.resolve(__dirname, '../../dist/cli/main.js');

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe('PostgresStore', function () {
  this.timeout(30_000);
  let schema: TestSchema;
  const stores: PostgresStore[] = [];

  before(async function () {
    await requirePostgres(this);
  });
  beforeEach(async () => {
    schema = await createTestSchema();
    await schema.pool.query(
      `CREATE TABLE "${schema.name}".ledger (id serial PRIMARY KEY, action_id text NOT NULL, payout numeric NOT NULL, key text NOT NULL)`,
    );
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await schema.drop();
  });

  function store(settings: { lockTimeoutMs?: number; url?: string } = {}): PostgresStore {
    const created = new PostgresStore({
      connectionString: settings.url ?? DATABASE_URL,
      schema: schema.name,
      ...(settings.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: settings.lockTimeoutMs }),
    });
    stores.push(created);
    return created;
  }

  async function ledger(): Promise<{ action_id: string; payout: string }[]> {
    const { rows } = await schema.pool.query(`SELECT action_id, payout::text FROM "${schema.name}".ledger ORDER BY id`);
    return rows as { action_id: string; payout: string }[];
  }

  /** A router whose action listener inserts a ledger row through ctx.transaction, then runs `after`. */
  function ledgerApp(
    postgres: PostgresStore,
    after: (client: PgClient) => Promise<void> | void = () => undefined,
    listenerTimeout = 5000,
  ) {
    const test = createApp({ store: postgres, listenerTimeout }, { listen: false });
    test.postbacks.on('action', async (event, ctx) => {
      await ctx.transaction.query(`INSERT INTO "${schema.name}".ledger (action_id, payout, key) VALUES ($1, $2, $3)`, [
        event.actionId,
        event.payout ?? '0',
        event.meta.key,
      ]);
      await after(ctx.transaction);
    });
    return test;
  }

  describe('options', () => {
    const bad: [string, Record<string, unknown>, RegExp][] = [
      ['no connection', {}, /PostgresStore needs option connectionString .* or option pool/],
      ['a schema with a quote', { connectionString: DATABASE_URL, schema: 'a"b' }, /option schema must be/],
      ['a prefix with a space', { connectionString: DATABASE_URL, tablePrefix: 'a b' }, /option tablePrefix must be/],
      ['a lockTimeoutMs of 0', { connectionString: DATABASE_URL, lockTimeoutMs: 0 }, /option lockTimeoutMs/],
      ['a pool that is not one', { pool: {} }, /option pool must be a node-postgres Pool/],
      ['a create that is not a boolean', { connectionString: DATABASE_URL, create: 'no' }, /option create/],
    ];
    for (const [name, options, message] of bad) {
      it(`throw a TypeError naming the option for ${name}`, () => {
        expect(() => new PostgresStore(options as never)).to.throw(TypeError, message);
      });
    }

    it("give a shared pool's clients one error listener, however many stores it serves", async () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
      const many = Array.from({ length: 12 }, () => new PostgresStore({ pool }));
      const client = await pool.connect();
      const counts = { connect: pool.listenerCount('connect'), clientError: client.listenerCount('error') };
      client.release();
      await Promise.all(many.map((each) => each.close()));
      await pool.end();
      expect(counts).to.deep.equal({ connect: 1, clientError: 1 });
    });
  });

  describe('tables', () => {
    it('are created on first use, safely when several instances start at the same moment', async () => {
      const many = Array.from({ length: 6 }, () => store());
      const claims = await Promise.all(many.map((each) => each.begin(randomUUID(), `action:${randomUUID()}`)));
      for (const claim of claims) {
        expect(claim).to.be.an('object');
        if (typeof claim === 'object') await claim.commit({ status: 'PENDING' }, 'delivered');
      }
      const { rows } = await schema.pool.query(
        `SELECT count(*)::int AS keys, (SELECT count(*)::int FROM "${schema.name}".impact_postbacks_journal) AS records FROM "${schema.name}".impact_postbacks_keys`,
      );
      expect(rows[0]).to.deep.equal({ keys: 6, records: 6 });
    });

    it('take postbacks without the history table (a database an earlier version migrated) from a user who may not create it', async () => {
      const run = promisify(execFile);
      await run(process.execPath, [BIN, 'migrate', '--schema', schema.name], { env: { ...process.env, DATABASE_URL } });
      await schema.pool.query(`DROP TABLE "${schema.name}".impact_postbacks_history`);
      const role = `impact_app_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      await schema.pool.query(`CREATE ROLE ${role} LOGIN`);
      await schema.pool.query(`GRANT USAGE ON SCHEMA "${schema.name}" TO ${role}`);
      await schema.pool.query(
        `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${schema.name}" TO ${role}`,
      );
      const url = new URL(DATABASE_URL);
      url.username = role;
      const app = createApp({ store: store({ url: url.href }), history: true });
      const send = (id: string) =>
        request(app.app).get('/impact/actions').query({ ActionId: id, Status: 'PENDING', Payout: '1.00' });
      try {
        // The postback is taken; only its history entry fails, with an error event.
        await send('upgrade.1').expect(200);
        await app.postbacks.history?.list().catch(() => undefined);
        expect(app.events.action.map((event) => event.actionId)).to.deep.equal(['upgrade.1']);
        expect(app.events.error.map((error) => error.code)).to.include('store.failed');
        expect(app.events.error.map((error) => String(error.cause))).to.satisfy((causes: string[]) =>
          causes.some((cause) => /permission denied/.test(cause)),
        );
        // migrate adds the table; with the grants, entries are written again.
        const migrated = await run(process.execPath, [BIN, 'migrate', '--schema', schema.name], {
          env: { ...process.env, DATABASE_URL },
        });
        expect(migrated.stdout).to.match(/^created in /);
        await schema.pool.query(
          `GRANT SELECT, INSERT, DELETE ON "${schema.name}".impact_postbacks_history TO ${role};
           GRANT USAGE ON SEQUENCE "${schema.name}".impact_postbacks_history_id_seq TO ${role}`,
        );
        await send('upgrade.2').expect(200);
        const { entries } = (await app.postbacks.history?.list()) ?? { entries: [] };
        expect(entries.map((entry) => entry.actionId)).to.deep.equal(['upgrade.2']);
      } finally {
        await app.postbacks.close();
        await Promise.all(stores.splice(0).map((each) => each.close()));
        await schema.pool.query(`DROP OWNED BY ${role}`);
        await schema.pool.query(`DROP ROLE ${role}`);
      }
    });

    it('are made by `impact-postbacks migrate`, after which a user without the right to create them can use the store', async () => {
      const role = `impact_app_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      await schema.pool.query(`CREATE ROLE ${role} LOGIN`);
      await schema.pool.query(`GRANT USAGE ON SCHEMA "${schema.name}" TO ${role}`);
      const url = new URL(DATABASE_URL);
      url.username = role;
      try {
        // Without the tables, the restricted user's first claim fails: the router would answer 503.
        const early = store({ url: url.href });
        const refused = await Promise.resolve(early.begin('k', 'action:1')).catch((error: unknown) => error);
        expect(String(refused)).to.match(/permission denied/);

        const run = promisify(execFile);
        const migrated = await run(process.execPath, [BIN, 'migrate', '--schema', schema.name], {
          env: { ...process.env, DATABASE_URL },
        });
        const p = 'impact_postbacks_';
        const named = {
          tables: [`${p}keys`, `${p}journal`, `${p}inbox`, `${p}inbox_attempts`, `${p}history`],
          indexes: [
            'keys_expires_at',
            'journal_expires_at',
            'inbox_waiting',
            'inbox_subject',
            'inbox_status',
            'inbox_subject_all',
            'history_action_id',
            'history_sub_id1',
            'history_outcome',
            'history_code',
            'history_received',
          ].map((name) => p + name),
          functions: [`${p}begin_v5`, `${p}inbox_add_v5`, `${p}inbox_next_v5`],
        };
        const listed = `schema ${schema.name}: tables ${named.tables.join(', ')}; indexes ${named.indexes.join(', ')}; functions ${named.functions.join(', ')}`;
        expect(migrated.stdout).to.equal(`created in ${listed}\n`);
        // What it names is what is there.
        const present = await schema.pool.query(
          `SELECT relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
           UNION ALL SELECT proname FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace WHERE n.nspname = $1`,
          [schema.name],
        );
        const names = new Set((present.rows as { name: string }[]).map((row) => row.name));
        expect(
          [...named.tables, ...named.indexes, ...named.functions].filter((name) => !names.has(name)),
        ).to.deep.equal([]);
        const again = await run(process.execPath, [
          BIN,
          'migrate',
          '--database-url',
          DATABASE_URL,
          '--schema',
          schema.name,
        ]);
        expect(again.stdout).to.equal(`already in place in ${listed}\n`);
        await schema.pool.query(
          `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${schema.name}" TO ${role}`,
        );

        const restricted = store({ url: url.href });
        const claim = await restricted.begin('k', 'action:1');
        expect(claim).to.be.an('object');
        if (typeof claim === 'object') await claim.commit({ status: 'APPROVED' }, 'delivered');
        expect(await restricted.begin('k', 'action:1')).to.equal('handled');
      } finally {
        await Promise.all(stores.splice(0).map((each) => each.close()));
        await schema.pool.query(`DROP OWNED BY ${role}`);
        await schema.pool.query(`DROP ROLE ${role}`);
      }
    });

    it('are printed by `impact-postbacks migrate --print`, the same DDL the store applies', async () => {
      const { stdout } = await promisify(execFile)(process.execPath, [
        BIN,
        'migrate',
        '--print',
        '--schema',
        schema.name,
      ]);
      await schema.pool.query(stdout);
      const { rows } = await schema.pool.query(
        `SELECT to_regclass($1) IS NOT NULL AS keys, to_regclass($2) IS NOT NULL AS journal`,
        [`"${schema.name}".impact_postbacks_keys`, `"${schema.name}".impact_postbacks_journal`],
      );
      expect(rows[0]).to.deep.equal({ keys: true, journal: true });
    });
  });

  it("writes keys, subjects and records holding quotes, backslashes and any Unicode exactly (values are sent in the query's text)", async () => {
    const postgres = store();
    const key = `actions:it's \\ a "key" ${randomUUID()}`;
    const subject = `action:o'brien\\\\x;--${randomUUID()}`;
    const record = { status: "APP'ROVED", payout: '\\0.88', currency: 'E\u20ac', note: "'; DROP TABLE x; --" };
    const claim = await postgres.begin(key, subject);
    if (typeof claim !== 'object') throw new Error(`expected a claim, got ${claim}`);
    await claim.commit(record, 'delivered');
    expect(await postgres.readJournal([subject])).to.deep.equal([record]);
    expect(await postgres.begin(key, subject)).to.equal('handled');
  });

  it('close() ends a pool it created, and never one it was given', async () => {
    const own = new PostgresStore({ connectionString: DATABASE_URL, schema: schema.name });
    await own
      .begin(randomUUID(), null)
      .then((claim) => (typeof claim === 'object' ? claim.release('failed') : undefined));
    await own.close();
    await own.close();
    expect((own as unknown as { pool: pg.Pool }).pool.ended).to.equal(true);

    const pool = new pg.Pool({ connectionString: DATABASE_URL });
    const given = new PostgresStore({ pool, schema: schema.name });
    await given.close();
    expect(pool.ended).to.equal(false);
    expect((await pool.query('SELECT 1 AS one')).rows).to.deep.equal([{ one: 1 }]);
    await pool.end();
  });

  describe('listeners writing through ctx.transaction', () => {
    it('commit with the postback: one ledger row, and a retry is a duplicate', async () => {
      const { app, events } = ledgerApp(store());
      await request(app).get('/impact/actions?ActionId=1.1&Payout=10.00').expect(200);
      await request(app).get('/impact/actions?ActionId=1.1&Payout=10.00').expect(200);
      expect(await ledger()).to.deep.equal([{ action_id: '1.1', payout: '10.00' }]);
      expect(events.duplicate).to.have.length(1);
    });

    it('roll back when a listener writes and then throws: 500, no row, and the retry is delivered', async () => {
      let failing = true;
      const { app, events } = ledgerApp(store(), () => {
        if (failing) throw new Error('mail server down');
      });
      const res = await request(app).get('/impact/actions?ActionId=2.1&Payout=5.00').expect(500);
      expect(errorCode(res.text)).to.equal('listener.failed');
      expect(await ledger()).to.deep.equal([]);
      failing = false;
      await request(app).get('/impact/actions?ActionId=2.1&Payout=5.00').expect(200);
      expect(await ledger()).to.deep.equal([{ action_id: '2.1', payout: '5.00' }]);
      expect(events.duplicate).to.deep.equal([]);
    });

    it('roll back at the timeout: 503, and what the listener writes after it is never committed', async () => {
      const gate = deferred();
      const lateWrite = deferred();
      let calls = 0;
      const { app, events } = ledgerApp(
        store(),
        async (client) => {
          calls += 1;
          if (calls > 1) return;
          await gate.promise;
          // Too late: the transaction is gone, and so is the connection.
          await client
            .query(`INSERT INTO "${schema.name}".ledger (action_id, payout, key) VALUES ('late', 1, 'late')`)
            .catch(() => undefined);
          lateWrite.resolve();
        },
        300,
      );
      const res = await request(app).get('/impact/actions?ActionId=3.1&Payout=7.00').expect(503);
      expect(errorCode(res.text)).to.equal('listener.timeout');
      gate.resolve();
      await lateWrite.promise;
      expect(await ledger()).to.deep.equal([]);
      // impact.com's retry finds nothing done, and is delivered.
      await request(app).get('/impact/actions?ActionId=3.1&Payout=7.00').expect(200);
      expect(await ledger()).to.deep.equal([{ action_id: '3.1', payout: '7.00' }]);
      expect(events.error.map((error) => error.code)).to.include('listener.timeout');
    });

    it('answer 503 when a statement failed inside the transaction, even if the listener caught it', async () => {
      const { app, events } = ledgerApp(store(), async (client) => {
        await client.query('SELECT 1 / 0').catch(() => undefined);
      });
      const action = await request(app).get('/impact/actions?ActionId=4.1&Payout=1.00').expect(503);
      expect(errorCode(action.text)).to.equal('store.failed');
      expect(await ledger()).to.deep.equal([]);
      expect(events.error.filter((error) => error.code === 'store.failed')).to.have.length.greaterThan(0);
    });

    it('answer 503 for a catalog postback, which records nothing but its key, when a statement failed inside its transaction', async () => {
      const catalog = createApp({ store: store() }, { listen: false });
      let failing = true;
      catalog.postbacks.on('catalog', async (_event, ctx) => {
        if (failing) await ctx.transaction.query('SELECT 1 / 0').catch(() => undefined);
      });
      const res = await request(catalog.app).get('/impact/catalog?CatalogItemId=4.2').expect(503);
      expect(errorCode(res.text)).to.equal('store.failed');
      // Nothing was recorded: the retry is delivered, not a duplicate.
      failing = false;
      await request(catalog.app)
        .get('/impact/catalog?CatalogItemId=4.2')
        .expect(200)
        .expect('X-Postback-Outcome', 'delivered');
    });
  });

  describe('two processes on one database', () => {
    it('a copy waits for the first: a duplicate once it committed', async () => {
      const gate = deferred();
      const first = ledgerApp(store(), () => gate.promise);
      const second = ledgerApp(store());
      const url = '/impact/actions?ActionId=5.1&Payout=3.00';
      const one = request(first.app).get(url);
      const pendingOne = one.then((res) => res.status);
      await sleep(100);
      const two = request(second.app)
        .get(url)
        .then((res) => res.status);
      await sleep(200);
      gate.resolve();
      expect(await Promise.all([pendingOne, two])).to.deep.equal([200, 200]);
      expect(second.events.duplicate).to.have.length(1);
      expect(await ledger()).to.deep.equal([{ action_id: '5.1', payout: '3.00' }]);
    });

    it('a copy waits for the first: delivered when the first rolled back', async () => {
      const gate = deferred();
      const first = ledgerApp(store(), async () => {
        await gate.promise;
        throw new Error('first fails');
      });
      const second = ledgerApp(store());
      const url = '/impact/actions?ActionId=5.2&Payout=3.00';
      const one = request(first.app)
        .get(url)
        .then((res) => res.status);
      await sleep(100);
      const two = request(second.app)
        .get(url)
        .then((res) => res.status);
      await sleep(200);
      gate.resolve();
      expect(await Promise.all([one, two])).to.deep.equal([500, 200]);
      expect(await ledger()).to.deep.equal([{ action_id: '5.2', payout: '3.00' }]);
    });

    it('a copy waiting longer than lockTimeoutMs is answered 503 postback.in_flight with Retry-After', async () => {
      const gate = deferred();
      const first = ledgerApp(store(), () => gate.promise);
      const second = ledgerApp(store({ lockTimeoutMs: 300 }));
      const url = '/impact/actions?ActionId=5.3&Payout=3.00';
      const one = request(first.app).get(url);
      const pendingOne = one.then((res) => res.status);
      await sleep(100);
      const started = Date.now();
      const res = await request(second.app).get(url).expect(503);
      expect(Date.now() - started).to.be.within(250, 2000);
      expect(errorCode(res.text)).to.equal('postback.in_flight');
      expect(res.headers['retry-after']).to.equal('10');
      gate.resolve();
      expect(await pendingOne).to.equal(200);
      expect(await ledger()).to.have.length(1);
    });

    it('another postback of the same action waits, then sees the first as ctx.previous', async () => {
      const gate = deferred();
      const first = ledgerApp(store(), () => gate.promise);
      const second = createApp({ store: store() }, { listen: false });
      const previous: (string | null | undefined)[] = [];
      second.postbacks.on('action', (_event, ctx) => void previous.push(ctx.previous?.payout));
      const one = request(first.app)
        .get('/impact/actions?ActionId=5.4&Status=PENDING&Payout=10.00')
        .then((res) => res.status);
      await sleep(100);
      const two = request(second.app)
        .get('/impact/actions?ActionId=5.4&Status=PENDING&Payout=8.00')
        .then((res) => res.status);
      await sleep(200);
      expect(previous).to.deep.equal([]);
      gate.resolve();
      expect(await Promise.all([one, two])).to.deep.equal([200, 200]);
      expect(previous).to.deep.equal(['10.00']);
    });
  });

  it('answers 503 while PostgreSQL is unreachable, stays up, and works again once it is back', async () => {
    const proxy = await startTcpProxy(Number(new URL(DATABASE_URL).port || 5432), new URL(DATABASE_URL).hostname);
    try {
      const url = new URL(DATABASE_URL);
      url.host = `127.0.0.1:${proxy.port}`;
      const { app, events } = ledgerApp(store({ url: url.href }), () => undefined, 2000);
      await request(app).get('/impact/actions?ActionId=6.1&Payout=1.00').expect(200);
      await proxy.down();
      const started = Date.now();
      const res = await request(app).get('/impact/actions?ActionId=6.2&Payout=1.00').expect(503);
      expect(Date.now() - started).to.be.below(2500);
      expect(errorCode(res.text)).to.equal('store.failed');
      await proxy.up();
      await request(app).get('/impact/actions?ActionId=6.2&Payout=1.00').expect(200);
      expect((await ledger()).map((row) => row.action_id)).to.deep.equal(['6.1', '6.2']);
      expect(events.error.map((error) => error.code)).to.include('store.failed');
    } finally {
      await proxy.close();
    }
  });
});
