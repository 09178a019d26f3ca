import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import request from 'supertest';
import { MemoryStore, RedisStore, SqliteStore, type ClaimResult, type DedupeStore } from '../../lib';
import { loadOptionalModule } from '../../lib/dedupe/optional-module';
import { createApp, errorCode } from '../helpers/create-app';
import { REDIS_URL, requireRedis } from '../helpers/services';

interface StoreSettings {
  readonly leaseMs?: number;
  readonly retentionMs?: number;
}

interface StoreKind {
  readonly name: string;
  /** Runs before the suite; may skip it (Redis absent). */
  readonly before?: (context: Mocha.Context) => Promise<void>;
  /** A store; `peer` stores share the same backing data through another connection. */
  readonly create: (settings?: StoreSettings) => DedupeStore;
  readonly close: () => Promise<void>;
  /** A store whose backend is down; undefined where there is no backend to lose. */
  readonly broken?: () => Promise<{ store: DedupeStore; stop: () => Promise<void> }>;
}

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
    broken: async () => {
      // A port where nothing listens: Redis is down.
      const probe = net.createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const { port } = probe.address() as net.AddressInfo;
      await new Promise((resolve) => probe.close(resolve));
      const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 300 });
      return { store, stop: () => store.close() };
    },
  };
}

for (const kind of [memoryKind(), sqliteKind(), redisKind()]) {
  describe(`store conformance: ${kind.name}`, function () {
    this.timeout(20_000);
    before(async function () {
      await kind.before?.(this);
    });
    after(async () => kind.close());

    it('answers claimed, in-flight and handled, and forgets a released claim', async () => {
      const store = kind.create();
      const key = randomUUID();
      expect(await store.claim(key)).to.equal('claimed');
      expect(await store.claim(key)).to.equal('in-flight');
      await store.commit(key);
      expect(await store.claim(key)).to.equal('handled');
      const other = randomUUID();
      expect(await store.claim(other)).to.equal('claimed');
      await store.release(other);
      expect(await store.claim(other)).to.equal('claimed');
    });

    it('gives exactly one claim per key to many concurrent callers on separate connections', async () => {
      const callers = Array.from({ length: 8 }, () => kind.create());
      const keys = Array.from({ length: 25 }, () => randomUUID());
      const results = await Promise.all(
        keys.flatMap((key) =>
          callers
            .flatMap((store) => [store.claim(key), store.claim(key)])
            .map(async (pending) => [key, await pending] as const),
        ),
      );
      for (const key of keys) {
        const answers = results.filter(([candidate]) => candidate === key).map(([, answer]) => answer);
        expect(
          answers.filter((answer) => answer === 'claimed'),
          key,
        ).to.have.length(1);
        expect(answers.filter((answer) => answer === 'in-flight')).to.have.length(15);
      }
    });

    it('lets another caller take over a claim after its lease runs out', async () => {
      const store = kind.create({ leaseMs: 150 });
      const key = randomUUID();
      expect(await store.claim(key)).to.equal('claimed');
      await sleep(250);
      expect(await store.claim(key)).to.equal('claimed');
    });

    it('forgets a handled key after its retention', async () => {
      const store = kind.create({ retentionMs: 150 });
      const key = randomUUID();
      await store.claim(key);
      await store.commit(key);
      expect(await store.claim(key)).to.equal('handled');
      await sleep(250);
      expect(await store.claim(key)).to.equal('claimed');
    });

    if (kind.broken !== undefined) {
      const { broken } = kind;
      it('fails fast when its backend is down, and the router answers 503 with nothing emitted', async () => {
        const { store, stop } = await broken();
        try {
          const started = Date.now();
          let failure: unknown;
          try {
            await store.claim(randomUUID());
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
  });
}

describe('SqliteStore', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'impact-sqlite-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('remembers handled keys across a close and reopen, in WAL mode', () => {
    const file = path.join(dir, 'keys.db');
    const first = new SqliteStore({ path: file });
    first.claim('a');
    first.commit('a');
    first.close();
    const second = new SqliteStore({ path: file });
    expect(second.claim('a')).to.equal('handled');
    const db = (second as unknown as { db: { pragma(source: string, options: { simple: true }): unknown } }).db;
    expect(db.pragma('journal_mode', { simple: true })).to.equal('wal');
    second.close();
  });

  it('finds a key through the primary key index, and prunes by the expiry index', () => {
    const store = new SqliteStore({ path: path.join(dir, 'plan.db'), retentionMs: 1 });
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
    expect(plan('DELETE FROM postback_keys WHERE expires_at <= ?', 0)).to.match(/postback_keys_expires_at/);
    store.claim('x');
    store.commit('x');
    const deadline = Date.now() + 5;
    while (Date.now() <= deadline) {
      // wait past the 1 ms retention
    }
    expect(store.prune()).to.equal(1);
    store.close();
  });

  it('checks its options, naming them', () => {
    expect(() => new SqliteStore({ path: '' })).to.throw(TypeError, /option path/);
    expect(() => new SqliteStore({ path: path.join(dir, 'x.db'), leaseMs: 0 })).to.throw(TypeError, /option leaseMs/);
  });
});

describe('RedisStore', () => {
  before(async function () {
    await requireRedis(this);
  });

  it('uses the key prefix, and releases only its own claim', async () => {
    const prefix = `impact-postbacks-test:${randomUUID()}:`;
    const mine = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, leaseMs: 100 });
    const theirs = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, leaseMs: 10_000 });
    try {
      expect(await mine.claim('k')).to.equal('claimed');
      await sleep(200);
      expect(await theirs.claim('k')).to.equal('claimed');
      await mine.release('k');
      expect(await mine.claim('k')).to.equal('in-flight');
      await theirs.commit('k');
      const raw = (theirs as unknown as { client: { get(key: string): Promise<string | null> } }).client;
      expect(await raw.get(`${prefix}k`)).to.equal('handled');
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
      const afterClose = connections;
      await sleep(2500);
      expect(connections).to.equal(afterClose);
    } finally {
      await new Promise((resolve) => down.close(resolve));
    }
  });

  it('fails within commandTimeoutMs when Redis accepts but never answers, and close() still drops the connection', async () => {
    const accepted: net.Socket[] = [];
    // Reads and drops what it is sent, as a hung Redis's kernel would, but never answers.
    const silent = net.createServer((socket) => {
      accepted.push(socket);
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, commandTimeoutMs: 300 });
    try {
      const started = Date.now();
      const outcome = await store.claim('k').then(
        (value: ClaimResult) => value,
        (error: unknown) => error,
      );
      expect(outcome).to.be.instanceOf(Error);
      expect(Date.now() - started).to.be.below(1500);
    } finally {
      await store.close();
      silent.close();
    }
    // QUIT goes unanswered too: the store must drop the connection rather than leave it open.
    expect(accepted).to.have.length(1);
    const [connection] = accepted;
    if (connection !== undefined && !connection.destroyed) await once(connection, 'close');
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
});
