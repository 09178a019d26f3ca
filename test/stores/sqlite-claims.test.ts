import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { SqliteStore, type BeginResult, type InboxEntry, type JournalRecord } from '../../lib';
import { ClaimLostError } from '../../lib/stores/claim-lost';
import { useStoreClock } from '../helpers/store-clock';
import { useTempDir } from '../helpers/temp-dir';
import { claimOf, failureOf } from '../helpers/claims';

/** The stores' time when each test starts; tests move it on by hand, never waiting. */
const T0 = 1_000_000_000;
const LEASE_MS = 10_000;
const RETENTION_MS = 60_000;
const DAY_MS = 24 * 60 * 60 * 1000;

const PENDING: JournalRecord = { status: 'PENDING', payout: '10.00' };
const APPROVED: JournalRecord = { status: 'APPROVED', payout: '10.00' };

describe('SqliteStore claims: holds, leases, fenced commits, retention and pruning', () => {
  const storeTime = useStoreClock(T0);
  const opened: { close(): unknown }[] = [];
  // Before useTempDir's own hook, so that the files are closed before their directory goes.
  afterEach(() => {
    for (const handle of opened.splice(0).reverse()) handle.close();
  });
  const dir = useTempDir('impact-sqlite-claims-');

  function file(): string {
    return path.join(dir(), 'postbacks.db');
  }

  function open(options: { retentionMs?: number; pruneIntervalMs?: number; create?: boolean } = {}): SqliteStore {
    const store = new SqliteStore({
      path: file(),
      leaseMs: LEASE_MS,
      retentionMs: RETENTION_MS,
      // A claim refused while another holds its subject answers in-flight quickly.
      lockTimeoutMs: 30,
      ...options,
    });
    opened.push(store);
    return store;
  }

  /** A second connection, as an operator's tool would open the file, to look at what was written. */
  function raw(): Database.Database {
    const db = new Database(file());
    opened.push(db);
    return db;
  }

  function count(db: Database.Database, table: string): number {
    return (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  }

  async function begin(store: SqliteStore, key: string, subject: string | null): Promise<BeginResult<undefined>> {
    return store.begin(key, subject);
  }

  it('keeps a handled key and its record for 90 days by default, and forgets both at that instant', async () => {
    const store = new SqliteStore({ path: file(), leaseMs: LEASE_MS, lockTimeoutMs: 30 });
    opened.push(store);

    await claimOf(await begin(store, 'k1', 'action:1')).commit(PENDING, 'delivered');
    storeTime.set(T0 + 90 * DAY_MS - 1);
    expect(await begin(store, 'k1', 'action:1')).to.equal('handled');
    const late = claimOf(await begin(store, 'k2', 'action:1'));
    expect(late.previous).to.deep.equal(PENDING);
    await late.release('failed');

    // The retention ends exactly now: a copy of the postback is new again, the action unknown.
    storeTime.set(T0 + 90 * DAY_MS);
    const again = claimOf(await begin(store, 'k1', 'action:1'));
    expect(again.previous).to.equal(null);
    expect(store.readJournal(['action:1'])).to.deep.equal([null]);
  });

  it('answers in-flight for a key an earlier version left in flight, until that row lapses', async () => {
    const store = open();
    // Before holds, a claim wrote its key's row in flight (state 0) with a lease.
    raw()
      .prepare('INSERT INTO postback_keys (key, state, expires_at) VALUES (?, 0, ?)')
      .run('old', T0 + 1000);
    expect(await begin(store, 'old', 'action:1')).to.equal('in-flight');
    storeTime.set(T0 + 1000);
    await claimOf(await begin(store, 'old', 'action:1')).commit(PENDING, 'delivered');
    expect(await begin(store, 'old', 'action:1')).to.equal('handled');
  });

  it('holds a subject for exactly its lease: other postbacks of it wait until the lease ends, then claim it', async () => {
    const store = open();
    claimOf(await begin(store, 'k1', 'action:1'));
    storeTime.set(T0 + LEASE_MS - 1);
    expect(await begin(store, 'k2', 'action:1')).to.equal('in-flight');
    storeTime.set(T0 + LEASE_MS);
    claimOf(await begin(store, 'k2', 'action:1'));
  });

  it('refuses the commit of a lapsed claim whose subject another claim now holds, even before that one writes', async () => {
    const store = open();
    await claimOf(await begin(store, 'k0', 'action:1')).commit(PENDING, 'delivered');
    const lapsed = claimOf(await begin(store, 'k1', 'action:1'));
    storeTime.set(T0 + LEASE_MS);
    const current = claimOf(await begin(store, 'k2', 'action:1'));
    // The record is still the one the lapsed claim read: only the hold tells them apart.
    const error = await failureOf(() => lapsed.commit(APPROVED, 'delivered'));
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message).to.match(/^the claim of action:1: another claim took it over/);
    // Nothing written: the record unchanged, the lapsed claim's key not handled.
    expect(store.readJournal(['action:1'])).to.deep.equal([PENDING]);
    expect(raw().prepare('SELECT key FROM postback_keys WHERE key = ?').get('k1')).to.equal(undefined);
    // The claim that took over still holds the subject and commits.
    expect(await begin(store, 'k3', 'action:1')).to.equal('in-flight');
    await current.commit(APPROVED, 'delivered');
    expect(store.readJournal(['action:1'])).to.deep.equal([APPROVED]);
  });

  it('refuses the commit of a lapsed claim of a postback without a subject once another claim holds its key', async () => {
    const store = open();
    const lapsed = claimOf(await begin(store, 'catalog-1', null));
    storeTime.set(T0 + LEASE_MS);
    const current = claimOf(await begin(store, 'catalog-1', null));
    const error = await failureOf(() => lapsed.commit(null, 'delivered'));
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message).to.match(/^the claim of key:catalog-1: /);
    expect(raw().prepare('SELECT key FROM postback_keys WHERE key = ?').get('catalog-1')).to.equal(undefined);
    await current.commit(null, 'delivered');
    expect(await begin(store, 'catalog-1', null)).to.equal('handled');
  });

  describe('a lapsed claim whose hold was pruned, nobody having taken it since', () => {
    it('commits when the record it read is unchanged', async () => {
      const store = open();
      await claimOf(await begin(store, 'k0', 'action:1')).commit(PENDING, 'delivered');
      const lapsed = claimOf(await begin(store, 'k1', 'action:1'));
      storeTime.set(T0 + LEASE_MS);
      store.prune();
      await lapsed.commit(APPROVED, 'delivered');
      expect(store.readJournal(['action:1'])).to.deep.equal([APPROVED]);
      expect(await begin(store, 'k1', 'action:1')).to.equal('handled');
    });

    it('commits when its action had no record then and has none now', async () => {
      const store = open();
      const lapsed = claimOf(await begin(store, 'k1', 'action:1'));
      storeTime.set(T0 + LEASE_MS);
      store.prune();
      await lapsed.commit(PENDING, 'delivered');
      expect(store.readJournal(['action:1'])).to.deep.equal([PENDING]);
      expect(await begin(store, 'k1', 'action:1')).to.equal('handled');
    });

    it('commits a postback without a subject', async () => {
      const store = open();
      const lapsed = claimOf(await begin(store, 'catalog-1', null));
      storeTime.set(T0 + LEASE_MS);
      store.prune();
      await lapsed.commit(null, 'delivered');
      expect(await begin(store, 'catalog-1', null)).to.equal('handled');
    });
  });

  it('refuses a lapsed claim whose record expired by the time it commits: it can no longer be told unchanged', async () => {
    const store = open();
    await claimOf(await begin(store, 'k0', 'action:1')).commit(PENDING, 'delivered');
    // Read while the record is kept; the hold lapses the instant the record expires.
    storeTime.set(T0 + RETENTION_MS - LEASE_MS);
    const lapsed = claimOf(await begin(store, 'k1', 'action:1'));
    expect(lapsed.previous).to.deep.equal(PENDING);
    storeTime.set(T0 + RETENTION_MS);
    // Another claim takes the subject and gives it up: the hold is gone, the expired row not yet pruned.
    const other = claimOf(await begin(store, 'k2', 'action:1'));
    expect(other.previous).to.equal(null);
    await other.release('failed');
    const error = await failureOf(() => lapsed.commit(APPROVED, 'delivered'));
    expect(error).to.be.instanceOf(ClaimLostError);
    expect(raw().prepare('SELECT key FROM postback_keys WHERE key = ?').get('k1')).to.equal(undefined);
  });

  it('accepts a commit made again after one whose answer was lost, writing nothing twice', async () => {
    const store = open();
    const claim = claimOf(await begin(store, 'k1', 'action:1'));
    await claim.commit(PENDING, 'delivered');
    await claim.commit(PENDING, 'delivered');
    expect(store.readJournal(['action:1'])).to.deep.equal([PENDING]);
    expect(count(raw(), 'postback_keys')).to.equal(1);
    // The subject is free for the action's next postback.
    expect(claimOf(await begin(store, 'k2', 'action:1')).previous).to.deep.equal(PENDING);
  });

  it('renews a claim past its lease; a renew after another claim took it over throws ClaimLostError naming it', async () => {
    const store = open();
    const claim = claimOf(await begin(store, 'k1', 'action:1'));
    storeTime.set(T0 + LEASE_MS - 1);
    await claim.renew?.();
    storeTime.set(T0 + LEASE_MS);
    expect(await begin(store, 'k2', 'action:1')).to.equal('in-flight');

    storeTime.set(T0 + 3 * LEASE_MS);
    claimOf(await begin(store, 'k2', 'action:1'));
    const error = await failureOf(() => claim.renew?.());
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message).to.match(/^the claim of action:1: /);

    const keyOnly = claimOf(await begin(store, 'catalog-1', null));
    storeTime.set(T0 + 5 * LEASE_MS);
    claimOf(await begin(store, 'catalog-1', null));
    const keyError = await failureOf(() => keyOnly.renew?.());
    expect(keyError).to.be.instanceOf(ClaimLostError);
    expect((keyError as Error).message).to.match(/^the claim of key:catalog-1: /);
  });

  it('commits a postback without a subject even when given a record, which it keeps nowhere', async () => {
    const store = open();
    await claimOf(await begin(store, 'catalog-1', null)).commit(PENDING, 'delivered');
    expect(await begin(store, 'catalog-1', null)).to.equal('handled');
    expect(count(raw(), 'postback_journal')).to.equal(0);
  });

  it('checks inboxLeaseMs, naming it', () => {
    expect(() => new SqliteStore({ path: file(), inboxLeaseMs: 0 })).to.throw(TypeError, /^option inboxLeaseMs /);
  });

  /** A delivered inbox row (its key and record), and a hold left by a claim whose process died. */
  async function expiring(store: SqliteStore): Promise<void> {
    const entry: InboxEntry = {
      key: 'inbox-1',
      subject: 'action:2',
      route: 'actions',
      format: 'json',
      ip: '127.0.0.1',
      path: '/actions',
      receivedAt: new Date(T0),
      fields: '{}',
    };
    await store.inbox.add(entry);
    const delivery = await store.inbox.next();
    if (delivery === null) throw new Error('no row was due');
    await delivery.commit(PENDING, 'delivered');
    claimOf(await begin(store, 'k1', 'action:1'));
  }

  it('prunes expired keys, records, holds and delivered inbox rows, and counts every row it deleted', async () => {
    const store = open();
    await expiring(store);
    const db = raw();
    const tables = ['postback_keys', 'postback_journal', 'postback_holds', 'postback_inbox'];
    const before = tables.map((table) => count(db, table));
    expect(before.every((n) => n > 0)).to.equal(true);

    storeTime.set(T0 + RETENTION_MS);
    expect(store.prune()).to.equal(before.reduce((sum, n) => sum + n, 0));
    expect(tables.map((table) => count(db, table))).to.deep.equal([0, 0, 0, 0]);
  });

  it('prunes expired rows on its own timer', async () => {
    const store = open({ pruneIntervalMs: 5 });
    await expiring(store);
    const db = raw();
    storeTime.set(T0 + RETENTION_MS);
    for (let waited = 0; waited < 2000 && count(db, 'postback_keys') > 0; waited += 10) await sleep(10);
    expect(
      ['postback_keys', 'postback_journal', 'postback_holds', 'postback_inbox'].map((t) => count(db, t)),
    ).to.deep.equal([0, 0, 0, 0]);
  });

  it('deletes nothing from a store that only looks (create: false), even on its timer', async () => {
    const writer = open();
    await expiring(writer);
    open({ create: false, pruneIntervalMs: 5 });
    const db = raw();
    storeTime.set(T0 + RETENTION_MS);
    // Many of the looking store's intervals pass.
    await sleep(100);
    expect(count(db, 'postback_keys')).to.be.above(0);
    expect(count(db, 'postback_holds')).to.equal(1);
  });
});
