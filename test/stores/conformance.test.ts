import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import request from 'supertest';
import {
  MemoryStore,
  PostgresStore,
  RedisStore,
  SqliteStore,
  type ActionState,
  type BeginResult,
  type PgClient,
  type PostbackStore,
  type StoreClaim,
} from '../../lib';
import { loadOptionalModule } from '../../lib/stores/optional-module';
import { betterSqliteForThisNode } from '../../lib/stores/sqlite/sqlite-store';
import { createApp, errorCode } from '../helpers/create-app';
import { freePort } from '../helpers/server';
import {
  createTestSchema,
  DATABASE_URL,
  REDIS_URL,
  requirePostgres,
  requireRedis,
  type TestSchema,
} from '../helpers/services';
import { useTempDir } from '../helpers/temp-dir';

interface StoreSettings {
  readonly leaseMs?: number;
  readonly retentionMs?: number;
  readonly lockTimeoutMs?: number;
}

type AnyStore = PostbackStore<unknown>;
type AnyClaim = StoreClaim<unknown>;

interface StoreKind {
  readonly name: string;
  /** Runs before the suite; may skip it (service absent). */
  readonly before?: (context: Mocha.Context) => Promise<void>;
  /** A store; stores made by one kind share their data, each through its own connection. */
  readonly create: (settings?: StoreSettings) => AnyStore;
  readonly close: () => Promise<void>;
  /**
   * Makes a claim's holder vanish as a crash would, and waits until another may take it: a
   * lease store waits out its lease (the store must be made with leaseMs 150), PostgreSQL loses
   * the claim's connection.
   */
  readonly abandon: (claim: AnyClaim) => Promise<void>;
  /** A store whose backend is down; undefined where there is no backend to lose. */
  readonly broken?: () => Promise<{ store: AnyStore; stop: () => Promise<void> }>;
}

const waitOutLease = async (): Promise<void> => sleep(250);

function memoryKind(): StoreKind {
  let shared: MemoryStore | undefined;
  return {
    name: 'MemoryStore',
    create: (settings = {}) => {
      // One process, one memory: every caller in the process shares it.
      if (settings.leaseMs !== undefined || settings.retentionMs !== undefined) {
        return new MemoryStore({
          ...(settings.leaseMs === undefined ? {} : { leaseMs: settings.leaseMs }),
          ...(settings.retentionMs === undefined ? {} : { maxAgeMs: settings.retentionMs }),
        });
      }
      shared ??= new MemoryStore();
      return shared;
    },
    close: async () => undefined,
    abandon: waitOutLease,
  };
}

function sqliteKind(): StoreKind {
  let dir = '';
  const opened: SqliteStore[] = [];
  return {
    name: 'SqliteStore',
    before: async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'impact-sqlite-'));
    },
    create: (settings = {}) => {
      const file =
        settings.leaseMs === undefined && settings.retentionMs === undefined ? 'shared.db' : `${randomUUID()}.db`;
      const store = new SqliteStore({ path: path.join(dir, file), ...settings });
      opened.push(store);
      return store;
    },
    close: async () => {
      for (const store of opened.splice(0)) store.close();
      await rm(dir, { recursive: true, force: true });
    },
    abandon: waitOutLease,
    broken: async () => {
      const store = new SqliteStore({ path: path.join(dir, 'broken.db') });
      store.close();
      return { store, stop: async () => undefined };
    },
  };
}

function redisKind(): StoreKind {
  const opened: RedisStore[] = [];
  const prefix = `impact-postbacks-test:${randomUUID()}:`;
  return {
    name: 'RedisStore',
    before: async (context) => requireRedis(context),
    create: (settings = {}) => {
      const store = new RedisStore({
        url: REDIS_URL,
        keyPrefix:
          settings.leaseMs === undefined && settings.retentionMs === undefined ? prefix : `${prefix}${randomUUID()}:`,
        ...settings,
      });
      opened.push(store);
      return store;
    },
    close: async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    },
    abandon: waitOutLease,
    broken: async () => {
      const store = new RedisStore({ url: `redis://127.0.0.1:${await freePort()}`, commandTimeoutMs: 300 });
      return { store, stop: () => store.close() };
    },
  };
}

function postgresKind(): StoreKind {
  const opened: PostgresStore[] = [];
  let schema: TestSchema | undefined;
  return {
    name: 'PostgresStore',
    before: async (context) => {
      await requirePostgres(context);
      schema = await createTestSchema();
    },
    create: (settings = {}) => {
      if (schema === undefined) throw new Error('no schema');
      const store = new PostgresStore({
        connectionString: DATABASE_URL,
        schema: schema.name,
        // Leases do not exist here; a store with its own retention gets tables of its own.
        tablePrefix: settings.retentionMs === undefined ? 'impact_postbacks_' : `t${randomUUID().slice(0, 8)}_`,
        ...(settings.retentionMs === undefined ? {} : { retentionMs: settings.retentionMs }),
        ...(settings.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: settings.lockTimeoutMs }),
      });
      opened.push(store);
      return store;
    },
    close: async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
      await schema?.drop();
    },
    abandon: async (claim) => {
      // As if the process died: its connection goes, and PostgreSQL rolls its transaction back.
      const client = claim.transaction as PgClient;
      const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
      await schema?.pool.query('SELECT pg_terminate_backend($1)', [(rows[0] as { pid: number }).pid]);
      // The dead connection is still checked out of this process's pool: let it go.
      await claim.release('timeout');
    },
    broken: async () => {
      const store = new PostgresStore({ connectionString: `postgres://postgres@127.0.0.1:${await freePort()}/test` });
      return { store, stop: () => store.close() };
    },
  };
}

function claimOf(result: BeginResult<unknown>): AnyClaim {
  if (typeof result === 'string') throw new Error(`expected a claim, got ${result}`);
  return result;
}

for (const kind of [memoryKind(), sqliteKind(), redisKind(), postgresKind()]) {
  describe(`store conformance: ${kind.name}`, function () {
    this.timeout(30_000);
    before(async function () {
      await kind.before?.(this);
    });
    after(async () => kind.close());

    it('answers a claim, then in-flight, then handled once committed; a released key is claimed again', async () => {
      const store = kind.create({ lockTimeoutMs: 200 });
      const key = randomUUID();
      const claim = claimOf(await store.begin(key, null));
      expect(await store.begin(key, null)).to.equal('in-flight');
      await claim.commit(null, 'delivered');
      expect(await store.begin(key, null)).to.equal('handled');
      const other = randomUUID();
      await claimOf(await store.begin(other, null)).release('failed');
      await claimOf(await store.begin(other, null)).release('failed');
    });

    it('gives exactly one claim per key to many concurrent callers on separate connections', async () => {
      const callers = Array.from({ length: 4 }, () => kind.create({ lockTimeoutMs: 300 }));
      const keys = Array.from({ length: 10 }, () => randomUUID());
      const results = await Promise.all(
        keys.flatMap((key) =>
          callers
            .flatMap((store) => [store.begin(key, null), store.begin(key, null)])
            .map(async (pending) => [key, await pending] as const),
        ),
      );
      for (const key of keys) {
        const answers = results.filter(([candidate]) => candidate === key).map(([, answer]) => answer);
        expect(
          answers.filter((answer) => typeof answer === 'object'),
          key,
        ).to.have.length(1);
        expect(answers.filter((answer) => answer === 'in-flight')).to.have.length(7);
      }
      for (const [, answer] of results) if (typeof answer === 'object') await answer.release('failed');
    });

    it('holds a subject: another key of it gets no claim until the first commits, then sees its record', async () => {
      const store = kind.create({ lockTimeoutMs: 3000 });
      const subject = `action:${randomUUID()}`;
      const first = claimOf(await store.begin(randomUUID(), subject));
      expect(first.previous).to.equal(null);
      const secondKey = randomUUID();
      let committed = false;
      const second = Promise.resolve(store.begin(secondKey, subject)).then((result) => {
        // A store that does not wait may only refuse while the first holds the subject.
        if (!committed) expect(result).to.equal('in-flight');
        return result;
      });
      await sleep(100);
      const record = { status: 'PENDING', payout: '10.00' };
      committed = true;
      await first.commit(record, 'delivered');
      const answer = await second;
      const claim = claimOf(answer === 'in-flight' ? await store.begin(secondKey, subject) : answer);
      expect(claim.previous).to.deep.equal(record);
      await claim.commit({ status: 'APPROVED', payout: '8.00' }, 'delivered');
      const third = claimOf(await store.begin(randomUUID(), subject));
      expect(third.previous).to.deep.equal({ status: 'APPROVED', payout: '8.00' });
      await third.release('failed');
    });

    it('reads journal records without claiming: in the order asked, null where none is, a held subject as committed', async () => {
      const store = kind.create();
      const [a, b, c] = [`action:${randomUUID()}`, `action:${randomUUID()}`, `action:${randomUUID()}`];
      await claimOf(await store.begin(randomUUID(), a)).commit({ status: 'PENDING', payout: '1.00' }, 'delivered');
      await claimOf(await store.begin(randomUUID(), c)).commit({ status: 'APPROVED', payout: '3.00' }, 'delivered');
      const holding = claimOf(await store.begin(randomUUID(), a));
      expect(await store.readJournal?.([c, b, a])).to.deep.equal([
        { status: 'APPROVED', payout: '3.00' },
        null,
        { status: 'PENDING', payout: '1.00' },
      ]);
      expect(await store.readJournal?.([])).to.deep.equal([]);
      // Reading took nothing: the holder commits, and the record read next is the new one.
      await holding.commit({ status: 'APPROVED', payout: '1.00' }, 'delivered');
      expect(await store.readJournal?.([a])).to.deep.equal([{ status: 'APPROVED', payout: '1.00' }]);
    });

    it('keeps the record when a claim commits without one, and gives the subject up on release', async () => {
      const store = kind.create({ lockTimeoutMs: 300 });
      const subject = `inquiry:${randomUUID()}`;
      await claimOf(await store.begin(randomUUID(), subject)).commit({ state: 'created' }, 'delivered');
      await claimOf(await store.begin(randomUUID(), subject)).commit(null, 'delivered');
      await claimOf(await store.begin(randomUUID(), subject)).release('failed');
      const claim = claimOf(await store.begin(randomUUID(), subject));
      expect(claim.previous).to.deep.equal({ state: 'created' });
      await claim.release('failed');
    });

    it('lets another caller take a key and subject over once the claim holder is gone', async () => {
      const store = kind.create({ leaseMs: 150, lockTimeoutMs: 3000 });
      const key = randomUUID();
      const subject = `action:${randomUUID()}`;
      await kind.abandon(claimOf(await store.begin(key, subject)));
      const claim = claimOf(await store.begin(key, subject));
      await claim.commit(null, 'delivered');
      expect(await store.begin(key, subject)).to.equal('handled');
    });

    it('never lets a claim that lapsed write over, or free, the claim that took its subject or key over', async () => {
      const store = kind.create({ leaseMs: 150, lockTimeoutMs: 100 });
      const subject = `action:${randomUUID()}`;
      const lapsed = claimOf(await store.begin(randomUUID(), subject));
      await kind.abandon(lapsed);
      const current = claimOf(await store.begin(randomUUID(), subject));
      expect(current.previous).to.equal(null);
      await Promise.resolve(current.commit({ status: 'REVERSED' }, 'delivered'));
      let refused = false;
      try {
        await lapsed.commit({ status: 'PENDING' }, 'delivered');
      } catch {
        refused = true;
      }
      expect({ refused, journal: await store.readJournal?.([subject]) }).to.deep.equal({
        refused: true,
        journal: [{ status: 'REVERSED' }],
      });

      const key = randomUUID();
      const lapsedKey = claimOf(await store.begin(key, null));
      await kind.abandon(lapsedKey);
      const currentKey = claimOf(await store.begin(key, null));
      await Promise.resolve(lapsedKey.release('failed')).catch(() => undefined);
      await currentKey.renew?.();
      expect(await store.begin(key, null)).to.equal('in-flight');
      await currentKey.release('failed');
    });

    it('keeps a claim it renews past its lease: nobody else takes its subject meanwhile', async () => {
      const store = kind.create({ leaseMs: 150, lockTimeoutMs: 100 });
      const subject = `action:${randomUUID()}`;
      const claim = claimOf(await store.begin(randomUUID(), subject));
      for (let renewed = 0; renewed < 8; renewed += 1) {
        await sleep(50);
        await claim.renew?.();
      }
      expect(await store.begin(randomUUID(), subject)).to.equal('in-flight');
      await claim.commit({ status: 'PENDING' }, 'delivered');
      const next = claimOf(await store.begin(randomUUID(), subject));
      expect(next.previous).to.deep.equal({ status: 'PENDING' });
      await next.release('failed');
    });

    it('forgets a handled key and its record after the retention', async () => {
      const store = kind.create({ retentionMs: 150 });
      const key = randomUUID();
      const subject = `action:${randomUUID()}`;
      await claimOf(await store.begin(key, subject)).commit({ status: 'PENDING' }, 'delivered');
      expect(await store.begin(key, subject)).to.equal('handled');
      await sleep(250);
      const claim = claimOf(await store.begin(key, subject));
      expect(claim.previous).to.equal(null);
      await claim.release('failed');
    });

    if (kind.broken !== undefined) {
      const { broken } = kind;
      it('fails fast when its backend is down, and the router answers 503 with nothing emitted', async () => {
        const { store, stop } = await broken();
        try {
          const started = Date.now();
          let failure: unknown;
          try {
            await store.begin(randomUUID(), 'action:1');
          } catch (error) {
            failure = error;
          }
          expect(failure).to.be.instanceOf(Error);
          expect(Date.now() - started).to.be.below(2000);
          const { app, events } = createApp({ store });
          const res = await request(app).get('/impact/actions?ActionId=1').expect(503);
          expect(errorCode(res.text)).to.equal('store.failed');
          expect(events.action).to.deep.equal([]);
        } finally {
          await stop();
        }
      });
    }

    it('serves the router: one emit for concurrent copies, a duplicate afterwards', async () => {
      const { app, events, postbacks } = createApp({ store: kind.create() }, { listen: false });
      let calls = 0;
      postbacks.on('action', async () => {
        calls += 1;
        await sleep(20);
      });
      const id = randomUUID();
      const statuses = await Promise.all(
        Array.from({ length: 10 }, () => request(app).get(`/impact/actions?ActionId=${id}`)),
      );
      expect(statuses.map((res) => res.status)).to.deep.equal(Array.from({ length: 10 }, () => 200));
      await request(app).get(`/impact/actions?ActionId=${id}`).expect(200);
      expect(calls).to.equal(1);
      expect(events.duplicate).to.have.length(10);
    });

    it('gives listeners the previous state across a modification: PENDING 10.00, then PENDING 8.00 sees 10.00', async () => {
      const { app, postbacks } = createApp({ store: kind.create() }, { listen: false });
      const seen: (ActionState | null)[] = [];
      postbacks.on('action', (_event, ctx) => void seen.push(ctx.previous));
      const id = randomUUID();
      const action = (payout: string) =>
        `/impact/actions?ActionId=${id}&Status=PENDING&Payout=${payout}&Amount=100.00&Currency=EUR`;
      await request(app).get(action('10.00')).expect(200);
      await request(app).get(action('8.00')).expect(200);
      expect(seen[0]).to.equal(null);
      expect(seen[1]).to.include({
        status: 'PENDING',
        payout: '10.00',
        amount: '100.00',
        currency: 'EUR',
        trigger: 'lifecycle',
      });
      expect(seen[1]?.key).to.match(/^actions:/);
      expect(seen[1]?.receivedAt).to.be.instanceOf(Date);
    });

    it('applies two postbacks of one action sent at once one after the other, each seeing the other', async () => {
      const { app, postbacks } = createApp({ store: kind.create({ lockTimeoutMs: 5000 }) }, { listen: false });
      const seen: [string | undefined, string | null | undefined][] = [];
      postbacks.on('action', async (event, ctx) => {
        await sleep(30);
        seen.push([event.payout, ctx.previous?.payout]);
      });
      const id = randomUUID();
      await Promise.all(
        ['1.00', '2.00', '3.00'].map((payout) =>
          request(app).get(`/impact/actions?ActionId=${id}&Status=PENDING&Payout=${payout}`).expect(200),
        ),
      );
      // Whatever the order, each saw the one applied just before it.
      expect(seen).to.have.length(3);
      expect(seen[0]?.[1]).to.equal(undefined);
      expect(seen[1]?.[1]).to.equal(seen[0]?.[0]);
      expect(seen[2]?.[1]).to.equal(seen[1]?.[0]);
    });
  });
}

describe('SqliteStore', () => {
  const dir = useTempDir('impact-sqlite-');

  it('remembers handled keys and the journal across a close and reopen, in WAL mode', async () => {
    const file = path.join(dir(), 'keys.db');
    const first = new SqliteStore({ path: file });
    const committed = claimOf(first.begin('a', 'action:1') as BeginResult<unknown>).commit(
      { status: 'APPROVED' },
      'delivered',
    );
    // close() writes a commit still waiting for its group's transaction.
    first.close();
    await committed;
    const second = new SqliteStore({ path: file });
    expect(second.begin('a', 'action:1')).to.equal('handled');
    expect(claimOf(second.begin('b', 'action:1') as BeginResult<unknown>).previous).to.deep.equal({
      status: 'APPROVED',
    });
    const db = (second as unknown as { db: { pragma(source: string, options: { simple: true }): unknown } }).db;
    expect(db.pragma('journal_mode', { simple: true })).to.equal('wal');
    second.close();
  });

  it('makes a copy of a postback held by another process wait for it: a duplicate once committed, claimed once released', async () => {
    const file = path.join(dir(), 'copies.db');
    const [first, second] = [new SqliteStore({ path: file }), new SqliteStore({ path: file, lockTimeoutMs: 3000 })];
    try {
      const held = claimOf(first.begin('k1', 'action:1') as BeginResult<unknown>);
      const copy = Promise.resolve(second.begin('k1', 'action:1'));
      await sleep(100);
      await held.commit({ status: 'PENDING' }, 'delivered');
      expect(await copy).to.equal('handled');

      const failing = claimOf(first.begin('k2', 'action:2') as BeginResult<unknown>);
      const retry = Promise.resolve(second.begin('k2', 'action:2'));
      await sleep(100);
      await failing.release('failed');
      const claim = claimOf(await retry);
      expect(claim.previous).to.equal(null);
      await claim.commit({ status: 'PENDING' }, 'delivered');
      expect(first.begin('k2', 'action:2')).to.equal('handled');
    } finally {
      first.close();
      second.close();
    }
  });

  it('finds keys and subjects through their primary keys, and prunes by the expiry indexes', async () => {
    const store = new SqliteStore({ path: path.join(dir(), 'plan.db'), retentionMs: 1 });
    const db = (store as unknown as { db: { prepare(sql: string): { all(...args: unknown[]): { detail: string }[] } } })
      .db;
    const plan = (sql: string, parameter: unknown) =>
      db
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all(parameter)
        .map((row) => row.detail)
        .join(' | ');
    expect(plan('SELECT state FROM postback_keys WHERE key = ?', 'k')).to.match(
      /SEARCH postback_keys USING PRIMARY KEY \(key=\?\)/,
    );
    expect(plan('SELECT record FROM postback_journal WHERE subject = ?', 's')).to.match(
      /SEARCH postback_journal USING PRIMARY KEY \(subject=\?\)/,
    );
    expect(plan('SELECT held_until FROM postback_holds WHERE subject = ?', 's')).to.match(
      /SEARCH postback_holds USING PRIMARY KEY \(subject=\?\)/,
    );
    expect(plan('DELETE FROM postback_keys WHERE expires_at <= ?', 0)).to.match(/postback_keys_expires_at/);
    expect(plan('DELETE FROM postback_journal WHERE expires_at <= ?', 0)).to.match(/postback_journal_expires_at/);
    await claimOf(store.begin('x', 'action:x') as BeginResult<unknown>).commit({ status: 'PENDING' }, 'delivered');
    const deadline = Date.now() + 5;
    while (Date.now() <= deadline) {
      // wait past the 1 ms retention
    }
    expect(store.prune()).to.equal(2);
    store.close();
  });

  it('checks its options, naming them', () => {
    expect(() => new SqliteStore({ path: '' })).to.throw(TypeError, /option path/);
    expect(() => new SqliteStore({ path: path.join(dir(), 'x.db'), leaseMs: 0 })).to.throw(TypeError, /option leaseMs/);
    expect(() => new SqliteStore({ path: path.join(dir(), 'x.db'), lockTimeoutMs: -1 })).to.throw(
      TypeError,
      /option lockTimeoutMs/,
    );
    expect(() => new SqliteStore({ path: path.join(dir(), 'x.db'), create: 1 as never })).to.throw(
      TypeError,
      /option create/,
    );
  });
});

/** Listens on a port of loopback the OS picks; resolves with it. */
async function listening(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** Expects the call to fail, and within `boundMs`. */
async function failsWithin(boundMs: number, call: () => unknown): Promise<void> {
  const started = Date.now();
  const outcome = await Promise.resolve()
    .then(call)
    .then(
      (value) => value,
      (error: unknown) => error,
    );
  expect(outcome).to.be.instanceOf(Error);
  expect(Date.now() - started).to.be.below(boundMs);
}

describe('RedisStore', () => {
  before(async function () {
    await requireRedis(this);
  });

  it('uses the key prefix for keys, journal and locks, and releases only its own claim', async () => {
    const prefix = `impact-postbacks-test:${randomUUID()}:`;
    const mine = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, leaseMs: 100 });
    const theirs = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, leaseMs: 10_000 });
    try {
      const lapsed = claimOf(await mine.begin('k', 'action:1'));
      await sleep(200);
      const current = claimOf(await theirs.begin('k', 'action:1'));
      await lapsed.release('failed');
      expect(await mine.begin('k', 'action:1')).to.equal('in-flight');
      await current.commit({ status: 'PENDING' }, 'delivered');
      const raw = (theirs as unknown as { client: { get(key: string): Promise<string | null> } }).client;
      expect(await raw.get(`${prefix}k`)).to.equal('handled');
      expect(JSON.parse((await raw.get(`${prefix}journal:action:1`)) ?? 'null')).to.deep.equal({ status: 'PENDING' });
      expect(await raw.get(`${prefix}lock:action:1`)).to.equal(null);
    } finally {
      await Promise.all([mine.close(), theirs.close()]);
    }
  });

  it('stops reconnecting once closed while Redis is down', async () => {
    // A Redis that is down: every connection is cut as soon as it is made.
    let connections = 0;
    const down = net.createServer((socket) => {
      connections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve));
    const { port } = down.address() as net.AddressInfo;
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 300 });
    try {
      await sleep(600);
      expect(connections, 'ioredis retries while the store is open').to.be.greaterThan(1);
      await store.close();
      // A connection the client began before close() may still be accepted after it (the
      // server hears of it a turn later): counted from when those have landed.
      await sleep(100);
      const afterClose = connections;
      await sleep(2500);
      expect(connections).to.equal(afterClose);
    } finally {
      await new Promise((resolve) => down.close(resolve));
    }
  });

  it('fails within commandTimeoutMs when Redis answers the connection check, then never a command', async () => {
    // Answers what ioredis sends as it connects (HELLO, CLIENT SETINFO and the ready check's
    // INFO), and never any other command.
    const info = '# Server\r\nloading:0\r\n';
    const answers: Record<string, string> = {
      hello: '*0\r\n',
      client: '+OK\r\n',
      info: `$${Buffer.byteLength(info)}\r\n${info}\r\n`,
    };
    const hung = net.createServer((socket) => {
      socket.on('data', (data: Buffer) => {
        // Each command is an array of bulk strings; its name is the first.
        for (const [, name] of data.toString('latin1').matchAll(/\*\d+\r\n\$\d+\r\n([^\r]*)\r\n/g)) {
          const answer = answers[(name ?? '').toLowerCase()];
          if (answer !== undefined) socket.write(answer);
        }
      });
    });
    const store = new RedisStore({ url: `redis://127.0.0.1:${await listening(hung)}`, commandTimeoutMs: 300 });
    try {
      await failsWithin(1500, () => store.begin('k', 'action:1'));
    } finally {
      await store.close();
      hung.close();
    }
  });

  it('fails within commandTimeoutMs when Redis accepts but never answers, and close() still drops the connection', async () => {
    const accepted: net.Socket[] = [];
    // Reads and drops what it is sent, as a hung Redis's kernel would, but never answers.
    const silent = net.createServer((socket) => {
      accepted.push(socket);
      socket.resume();
    });
    const store = new RedisStore({ url: `redis://127.0.0.1:${await listening(silent)}`, commandTimeoutMs: 300 });
    try {
      await failsWithin(1500, () => store.begin('k', null));
    } finally {
      await store.close();
      silent.close();
    }
    // QUIT goes unanswered too: the store must drop the connection rather than leave it open.
    expect(accepted).to.have.length(1);
    const [connection] = accepted;
    if (connection !== undefined && !connection.destroyed)
      await new Promise((resolve) => connection.once('close', resolve));
  });

  it('needs a url or a client', () => {
    expect(() => new RedisStore({} as never)).to.throw(TypeError, /option url/);
  });
});

describe('optional store modules', () => {
  it('say what to install when the peer dependency is missing', () => {
    expect(() => loadOptionalModule('better-sqlite3-not-installed', 'SqliteStore', 'better-sqlite3@12')).to.throw(
      /SqliteStore needs the package "better-sqlite3-not-installed", which is not installed: run npm install better-sqlite3@12/,
    );
  });

  it('tell SqliteStore users the better-sqlite3 that runs on their Node.js', () => {
    expect(betterSqliteForThisNode(20)).to.equal('better-sqlite3@12');
    expect(betterSqliteForThisNode(22)).to.equal('better-sqlite3@13');
    expect(betterSqliteForThisNode(24)).to.equal('better-sqlite3@13');
  });
});
