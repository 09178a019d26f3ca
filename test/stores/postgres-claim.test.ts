import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import pg from 'pg';
import { PostgresStore } from '../../lib';
import { Connection, TERMINATE_BACKEND_SQL } from '../../lib/stores/postgres/postgres-claim';
import { checkNames, objectsOf } from '../../lib/stores/postgres/postgres-schema';
import type { StoreClaim } from '../../lib/stores/store';
import { DATABASE_URL, useTestSchema } from '../helpers/services';

/**
 * The connection a PostgreSQL claim holds, and the claim's own commit and release, against a
 * real server: the bound on the store's queries, what closing, giving back and terminating do
 * to the pool and the server process, and a claim that can end only once.
 */
describe('PostgreSQL claims and their connections', function () {
  this.timeout(20_000);
  const pools: pg.Pool[] = [];
  const stores: PostgresStore[] = [];
  // Before the schema's own hooks: nothing may hold a transaction when the schema is dropped.
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    // A client a test left checked out would keep end() waiting for ever.
    await Promise.all(pools.splice(0).map((pool) => Promise.race([pool.end(), sleep(2000)])));
  });
  const schema = useTestSchema();

  function newPool(max = 2): pg.Pool {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max });
    pool.on('error', () => undefined);
    pools.push(pool);
    return pool;
  }

  const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

  /** The rejection of `promise`, failing the test if it resolves. */
  async function rejection(promise: Promise<unknown>): Promise<unknown> {
    return promise.then(
      (value: unknown) => {
        throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
      },
      (error: unknown) => error,
    );
  }

  /** The server process of a pg client (pg's types leave processID out). */
  const processIdOf = (client: unknown): number | null | undefined =>
    (client as { processID?: number | null }).processID;

  /** Whether the server process `pid` is still there. */
  async function processAlive(pid: number): Promise<boolean> {
    const { rows } = await schema().pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1',
      [pid],
    );
    return rows[0]?.n === 1;
  }

  describe('Connection', () => {
    it('a query that overruns its bound is rejected with a message naming the bound, and its connection closed', async () => {
      const pool = newPool();
      const connection = new Connection(await pool.connect(), 100);
      const error = await rejection(connection.query('SELECT pg_sleep(1)'));
      expect({ message: messageOf(error), clients: pool.totalCount }).to.deep.equal({
        message: 'PostgreSQL did not answer within 100 ms',
        // Closed, not given back: its transaction goes with it.
        clients: 0,
      });
    });

    it('a query that answered in time leaves its connection held and usable after the bound has passed', async () => {
      const pool = newPool();
      const connection = new Connection(await pool.connect(), 100);
      await connection.query('BEGIN');
      await connection.query('SELECT 1');
      // The first query's bound is long over: nothing may close the connection for it.
      await sleep(250);
      const { rows } = await connection.query('SELECT 2 AS two');
      const held = { rows, clients: pool.totalCount, idle: pool.idleCount };
      await connection.rollBack();
      expect(held).to.deep.equal({ rows: [{ two: 2 }], clients: 1, idle: 0 });
    });

    it('queryAll answers one result per statement, for a single statement too', async () => {
      const pool = newPool();
      const connection = new Connection(await pool.connect(), 5000);
      const single = await connection.queryAll('SELECT 1 AS one');
      const several = await connection.queryAll('SELECT 1 AS one; SELECT 2 AS two');
      connection.giveBack();
      expect({ single: single.map((r) => r.rows), several: several.map((r) => r.rows) }).to.deep.equal({
        single: [[{ one: 1 }]],
        several: [[{ one: 1 }], [{ two: 2 }]],
      });
    });

    it('a rollback that fails (the server process is gone) closes the connection instead of keeping it checked out', async () => {
      const pool = newPool(1);
      const client = await pool.connect();
      const connection = new Connection(client, 5000);
      await connection.query('BEGIN');
      await schema().pool.query(TERMINATE_BACKEND_SQL, [processIdOf(client)]);
      await connection.rollBack();
      // The pool's only slot is free again: a new connection can be had at once.
      const clients = pool.totalCount;
      const next = await pool.connect();
      next.release();
      expect(clients).to.equal(0);
    });

    it("a closed connection tells the pool why: its 'release' event carries an error naming impact-postbacks", async () => {
      const pool = newPool();
      const released: unknown[] = [];
      pool.on('release', (error: Error | undefined) => released.push(error === undefined ? undefined : error.message));
      new Connection(await pool.connect(), 5000).giveBack();
      new Connection(await pool.connect(), 5000).close();
      expect(released).to.deep.equal([undefined, 'closed by impact-postbacks']);
    });

    it('ends once: closing or giving back a connection already given back is harmless and leaves the pooled client alone', async () => {
      const pool = newPool(1);
      const client = await pool.connect();
      const connection = new Connection(client, 5000);
      connection.giveBack();
      // A late close (a bound's timer, a failed rollback) must not close a client another may hold by now.
      expect(() => {
        connection.close();
        connection.giveBack();
        connection.terminate();
      }).not.to.throw();
      expect({ clients: pool.totalCount, idle: pool.idleCount }).to.deep.equal({ clients: 1, idle: 1 });
    });

    it("a pooled client given back carries none of the connection's listeners, however often it is reused", async () => {
      const pool = newPool(1);
      const counts: number[] = [];
      for (let round = 0; round < 4; round += 1) {
        const client = await pool.connect();
        counts.push(client.listenerCount('error'));
        new Connection(client, 5000).giveBack();
      }
      expect(new Set(counts).size).to.equal(1);
    });

    it("terminate() closes the connection and ends its server process, letting the transaction's locks go at once", async () => {
      const pool = newPool();
      const client = await pool.connect();
      const pid = processIdOf(client);
      if (typeof pid !== 'number') throw new Error('pg gave no process id');
      const ended: number[] = [];
      let terminated: Promise<void> = Promise.resolve();
      const connection = new Connection(client, 30_000, (target) => {
        ended.push(target);
        terminated = schema()
          .pool.query(TERMINATE_BACKEND_SQL, [target])
          .then(() => undefined);
        return terminated;
      });
      const lock = Math.floor(Math.random() * 1_000_000_000);
      await connection.query('BEGIN');
      await connection.query('SELECT pg_advisory_xact_lock($1)', [lock]);
      // A listener's query still running on the server when the claim is given up.
      const running = connection.query('SELECT pg_sleep(10)').catch(() => 'failed');
      await sleep(50);
      connection.terminate();
      await terminated;
      const { rows } = await schema().pool.query<{ free: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS free', [
        lock,
      ]);
      expect({
        ended,
        clients: pool.totalCount,
        alive: await processAlive(pid),
        free: rows[0]?.free,
        running: await running,
      }).to.deep.equal({ ended: [pid], clients: 0, alive: false, free: true, running: 'failed' });
    });

    it('terminate() without a way to end server processes only closes the connection', async () => {
      const pool = newPool();
      const client = await pool.connect();
      expect(processIdOf(client)).to.be.a('number');
      const connection = new Connection(client, 5000);
      // Closing alone: the server process ends by itself once it sees its client gone.
      expect(() => connection.terminate()).not.to.throw();
      expect(pool.totalCount).to.equal(0);
    });

    it('terminate() of a client whose server process is not known (no processID) closes it and ends no process', async () => {
      const pool = newPool();
      const client = await pool.connect();
      // node-postgres sets processID once connected; before that it is null.
      (client as unknown as { processID: number | null }).processID = null;
      const ended: unknown[] = [];
      const connection = new Connection(client, 5000, (pid) => {
        ended.push(pid);
        return Promise.resolve();
      });
      connection.terminate();
      expect({ ended, clients: pool.totalCount }).to.deep.equal({ ended: [], clients: 0 });
    });
  });

  describe('PostgresStore claims', () => {
    function newStore(pool: pg.Pool): PostgresStore {
      const store = new PostgresStore({ pool, schema: schema().name });
      stores.push(store);
      return store;
    }

    async function claimOf(store: PostgresStore, key: string, subject: string | null): Promise<StoreClaim<unknown>> {
      const claim = await store.begin(key, subject);
      if (typeof claim !== 'object') throw new Error(`expected a claim, got ${claim}`);
      return claim;
    }

    async function journalRows(): Promise<unknown[]> {
      const { rows } = await schema().pool.query<{ subject: string; state: unknown }>(
        `SELECT subject, state FROM ${objectsOf(checkNames(schema().name, 'impact_postbacks_')).journal}`,
      );
      return rows;
    }

    it('a claim without a subject commits its key and writes no journal record, even when given one', async () => {
      const store = newStore(newPool());
      const key = `k-${randomUUID()}`;
      const claim = await claimOf(store, key, null);
      await claim.commit({ status: 'APPROVED' }, 'delivered');
      expect({ again: await store.begin(key, null), journal: await journalRows() }).to.deep.equal({
        again: 'handled',
        journal: [],
      });
    });

    it('a claim released as failed rolls back what listeners wrote and gives its connection back to the pool', async () => {
      const pool = newPool(1);
      const store = newStore(pool);
      await schema().pool.query(`CREATE TABLE "${schema().name}".ledger (key text NOT NULL)`);
      const claim = await claimOf(store, 'k1', 'action-1');
      const client = claim.transaction as pg.PoolClient;
      await client.query(`INSERT INTO "${schema().name}".ledger (key) VALUES ('k1')`);
      const pid = processIdOf(client);
      await claim.release('failed');
      const pooled = { clients: pool.totalCount, idle: pool.idleCount };
      // The same connection, not a new one: it was rolled back, not closed.
      const next = await claimOf(store, 'k1', 'action-1');
      const samePid = processIdOf(next.transaction) === pid;
      await next.release('failed');
      const { rows } = await schema().pool.query(`SELECT key FROM "${schema().name}".ledger`);
      expect({ pooled, samePid, alive: await processAlive(pid as number), rows }).to.deep.equal({
        pooled: { clients: 1, idle: 1 },
        samePid: true,
        alive: true,
        rows: [],
      });
    });

    it('a claim ends once: a second commit or a release after it is refused, and what was committed stays', async () => {
      const store = newStore(newPool());
      const claim = await claimOf(store, 'k1', 'action-1');
      await claim.commit({ status: 'APPROVED' }, 'delivered');
      const errors = [
        messageOf(await rejection(Promise.resolve().then(() => claim.commit({ status: 'REVERSED' }, 'delivered')))),
        messageOf(await rejection(Promise.resolve().then(() => claim.release('failed')))),
      ];
      expect({
        errors,
        again: await store.begin('k1', 'action-1'),
        journal: await journalRows(),
      }).to.deep.equal({
        errors: ['this claim was already committed or released', 'this claim was already committed or released'],
        again: 'handled',
        journal: [{ subject: 'action-1', state: { status: 'APPROVED' } }],
      });
    });

    it('a released claim cannot then be committed: refused, and the key stays free', async () => {
      const store = newStore(newPool());
      const claim = await claimOf(store, 'k1', 'action-1');
      await claim.release('failed');
      const error = await rejection(Promise.resolve().then(() => claim.commit({ status: 'APPROVED' }, 'delivered')));
      const again = await claimOf(store, 'k1', 'action-1');
      await again.release('failed');
      expect({ message: messageOf(error), journal: await journalRows() }).to.deep.equal({
        message: 'this claim was already committed or released',
        journal: [],
      });
    });

    it('begin reports a database failure other than a lock wait as that error, not as in-flight, and keeps no connection', async () => {
      const pool = newPool();
      const store = newStore(pool);
      const first = await claimOf(store, 'k1', 'action-1');
      await first.commit(null, 'delivered');
      // The claim function gone (a botched manual migration): begin fails for a reason no retry fixes by waiting.
      await schema().pool.query(
        `DROP FUNCTION ${objectsOf(checkNames(schema().name, 'impact_postbacks_')).begin}(text, text, integer, bigint)`,
      );
      const error = await rejection(Promise.resolve().then(() => store.begin('k2', 'action-2')));
      expect(messageOf(error)).to.match(/^function .*impact_postbacks_begin_v\d+\(.*\) does not exist$/);
      expect(pool.totalCount - pool.idleCount, 'connections still checked out').to.equal(0);
    });
  });
});
