import { expect } from 'chai';
import pg from 'pg';
import { AttemptCounter } from '../../lib/stores/postgres/postgres-attempts';
import { Connection } from '../../lib/stores/postgres/postgres-claim';
import { DATABASE_URL, useTestSchema } from '../helpers/services';

/**
 * The PostgreSQL inbox's attempt counter on its own, against a real server: what it counts, when
 * it opens, drops and reopens its connection, and what close() waits for.
 */
describe("PostgresStore's inbox: the attempt counter", function () {
  this.timeout(20_000);
  let pool: pg.Pool | null = null;
  const counters: AttemptCounter[] = [];
  // Before the schema's own hooks: the counters' connections end before it is dropped.
  afterEach(async () => {
    await Promise.all(counters.splice(0).map((counter) => counter.close()));
    await pool?.end();
    pool = null;
  });
  const schema = useTestSchema();

  /** The counter's table, as the schema makes it. */
  const table = (): string => `"${schema().name}"."inbox_attempts"`;
  const started = async (): Promise<Record<string, number>> => {
    const { rows } = await schema().pool.query<{ id: string; started: number }>(
      `SELECT id, started FROM ${table()} ORDER BY id`,
    );
    return Object.fromEntries(rows.map((row) => [row.id, row.started]));
  };

  const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

  /** Resolves once the server process `pid` waits for a lock. */
  const waitingOnLock = async (pid: number | null | undefined): Promise<void> => {
    for (;;) {
      const { rows } = await schema().pool.query<{ waiting: boolean }>(
        `SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1`,
        [pid],
      );
      if (rows[0]?.waiting === true) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };

  interface Opened {
    readonly counter: AttemptCounter;
    /** Each connection asked for, in order. */
    readonly connections: Connection[];
    /** The counter's clock, in ms: tests move it. */
    clock: { now: number };
  }

  async function openCounter(
    options: {
      connect?: (open: () => Promise<Connection>) => Promise<Connection>;
      clock?: boolean;
      /** Each failed statement reports its failure this much later, as over a slow network. */
      failureLateMs?: number;
      /** How long a statement may take before its connection is closed. */
      boundMs?: number;
    } = {},
  ): Promise<Opened> {
    await schema().pool.query(`CREATE TABLE ${table()} (id bigint PRIMARY KEY, started integer NOT NULL)`);
    const own = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
    own.on('error', () => undefined);
    pool = own;
    const connections: Connection[] = [];
    const open = async (): Promise<Connection> => {
      const client = await own.connect();
      const lateMs = options.failureLateMs;
      if (lateMs !== undefined) {
        const query = client.query.bind(client) as (text: string) => Promise<pg.QueryResult>;
        client.query = ((text: string) =>
          query(text).catch(
            (error: unknown) => new Promise((_, reject) => setTimeout(() => reject(error as Error), lateMs)),
          )) as typeof client.query;
      }
      const connection = new Connection(client, options.boundMs ?? 5000);
      connections.push(connection);
      return connection;
    };
    const clock = { now: 0 };
    const counter = new AttemptCounter(
      () => (options.connect ?? ((it) => it()))(open),
      table(),
      options.clock === true ? () => clock.now : undefined,
    );
    counters.push(counter);
    return { counter, connections, clock };
  }

  it('counts from the attempts begun: one more each time, after the greater of its own count and the row’s', async () => {
    const { counter } = await openCounter();
    await counter.ready();
    const numbers = [
      await counter.count(1, 0),
      await counter.count(1, 1),
      // The row's attempts read before the last count landed: the table's count goes on.
      await counter.count(1, 0),
      // Attempts whose end the row recorded before any were counted apart (an older version).
      await counter.count(1, 7),
      await counter.count(2, 0),
    ];
    expect({ numbers, started: await started() }).to.deep.equal({
      numbers: [1, 2, 3, 8, 1],
      started: { 1: 8, 2: 1 },
    });
  });

  it('takes back the count of its own attempt, never one counted since', async () => {
    const { counter } = await openCounter();
    await counter.ready();
    await counter.count(1, 0);
    const second = await counter.count(1, 0);
    await counter.uncount(1, second);
    const afterOwn = await started();
    // A give-back of a number not counted last (a later attempt began since) changes nothing.
    await counter.uncount(1, 5);
    expect({ afterOwn, afterStale: await started() }).to.deep.equal({ afterOwn: { 1: 1 }, afterStale: { 1: 1 } });
  });

  it('a count asked before the connection is open, or after close(), fails at once and writes nothing', async () => {
    const { counter, connections } = await openCounter();
    const before = await counter.count(1, 0).then(() => 'counted', messageOf);
    // Closing a counter that never opened its connection.
    await counter.close();
    const after = await counter.count(1, 0).then(() => 'counted', messageOf);
    const ready = await counter.ready().then(() => 'ready', messageOf);
    expect({ before, after, ready, opened: connections.length, started: await started() }).to.deep.equal({
      before: 'the inbox has no connection to count attempts with',
      after: 'the inbox is closed',
      ready: 'the inbox is closed',
      opened: 0,
      started: {},
    });
  });

  it('opens one connection for takes that ask at once, and one that opens after close() is closed, not kept', async () => {
    let letOpen: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (letOpen = resolve));
    const { counter, connections } = await openCounter({
      connect: async (open) => {
        await gate;
        return open();
      },
    });
    const readies = [counter.ready(), counter.ready()].map((ready) => ready.then(() => 'ready', messageOf));
    const closed = counter.close();
    letOpen();
    await closed;
    expect({ readies: await Promise.all(readies), opened: connections.length }).to.deep.equal({
      readies: ['the inbox is closed', 'the inbox is closed'],
      opened: 1,
    });
    // Closed (its client destroyed), not back in the pool.
    expect({ total: pool?.totalCount, idle: pool?.idleCount }).to.deep.equal({ total: 0, idle: 0 });
  });

  it('a connection that could not be opened is asked for again by the next take', async () => {
    let failures = 1;
    const { counter, connections, clock } = await openCounter({
      clock: true,
      connect: (open) => {
        if (failures > 0) {
          failures -= 1;
          return Promise.reject(new Error('too many clients already'));
        }
        return open();
      },
    });
    // Long after the clock's start: nothing open is not taken for a connection left unused.
    clock.now = 100_000;
    const first = await counter.ready().then(() => 'ready', messageOf);
    await counter.ready();
    expect({ first, opened: connections.length, number: await counter.count(1, 0) }).to.deep.equal({
      first: 'too many clients already',
      opened: 1,
      number: 1,
    });
  });

  it('keeps its connection while it is used; one unused for longer than 30 s is opened anew', async () => {
    const { counter, connections, clock } = await openCounter({ clock: true });
    await counter.ready();
    clock.now = 20_000;
    await counter.count(1, 0);
    // 30 s after it was opened, 10 s after its last use.
    clock.now = 30_001;
    await counter.ready();
    // Exactly 30 s unused: still trusted.
    clock.now = 50_000;
    await counter.ready();
    const keptFor = connections.length;
    clock.now = 50_001;
    await counter.ready();
    expect({ keptFor, opened: connections.length, number: await counter.count(1, 0) }).to.deep.equal({
      keptFor: 1,
      opened: 2,
      number: 2,
    });
    // The one left unused was closed: the pool holds only the new one.
    expect(pool?.totalCount).to.equal(1);
  });

  it('a count that fails drops its connection, and the next take opens another', async () => {
    const { counter, connections } = await openCounter();
    await counter.ready();
    await counter.count(1, 0);
    const pid = connections[0]?.client.processID;
    await schema().pool.query('SELECT pg_terminate_backend($1::int, 1000)', [pid]);
    const failed = await counter.count(1, 1).then(
      () => 'counted',
      () => 'failed',
    );
    await counter.ready();
    expect({ failed, opened: connections.length, number: await counter.count(1, 1) }).to.deep.equal({
      failed: 'failed',
      opened: 2,
      number: 2,
    });
  });

  it('a connection dropped as unused while a count runs on it: that count failing later leaves the new one open', async () => {
    // The statement waits on a row lock held elsewhere, past the 30 s of the counter's clock; its
    // failure, once the take closes its connection, is heard only after the new one is open.
    const { counter, connections, clock } = await openCounter({ clock: true, failureLateMs: 200 });
    await counter.ready();
    await counter.count(1, 0);
    const holder = await schema().pool.connect();
    try {
      await holder.query(`BEGIN; SELECT 1 FROM ${table()} WHERE id = 1 FOR UPDATE`);
      const waiting = counter.uncount(1, 1).then(
        () => 'taken back',
        () => 'failed',
      );
      await waitingOnLock(connections[0]?.client.processID);
      clock.now = 40_000;
      await counter.ready();
      const opened = connections.length;
      const outcome = await waiting;
      expect({ opened, outcome, number: await counter.count(2, 0) }).to.deep.equal({
        opened: 2,
        outcome: 'failed',
        number: 1,
      });
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
  });

  it('close() waits for the statements asked for before it, and ends its connection', async () => {
    const { counter } = await openCounter();
    await counter.ready();
    await counter.count(1, 0);
    const holder = await schema().pool.connect();
    await holder.query(`BEGIN; SELECT 1 FROM ${table()} WHERE id = 1 FOR UPDATE`);
    // A give-back as the router closes, held up by the lock for a moment.
    const order: string[] = [];
    const givenBack = counter.uncount(1, 1).then(() => order.push('given back'));
    setTimeout(() => {
      void holder.query('COMMIT').finally(() => holder.release());
    }, 300);
    await counter.close();
    order.push('closed');
    await givenBack;
    expect({ order, started: await started(), total: pool?.totalCount }).to.deep.equal({
      order: ['given back', 'closed'],
      started: { 1: 0 },
      total: 0,
    });
  });

  it('close() waits no longer than 2 s for a statement that does not end', async function () {
    // The statement's own bound is longer than the test's: only close()'s 2 s can end the wait.
    this.timeout(10_000);
    const { counter } = await openCounter({ boundMs: 60_000 });
    await counter.ready();
    await counter.count(1, 0);
    const holder = await schema().pool.connect();
    await holder.query(`BEGIN; SELECT 1 FROM ${table()} WHERE id = 1 FOR UPDATE`);
    try {
      const givenBack = counter.uncount(1, 1).then(
        () => 'taken back',
        () => 'failed',
      );
      await counter.close();
      // Its connection closed under it.
      expect({ givenBack: await givenBack, total: pool?.totalCount }).to.deep.equal({ givenBack: 'failed', total: 0 });
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
  });
});
