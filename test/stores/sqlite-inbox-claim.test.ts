import path from 'node:path';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { SqliteStore, type InboxClaim, type InboxEntry, type JournalRecord, type StoreClaim } from '../../lib';
import { ClaimLostError } from '../../lib/stores/claim-lost';
import { useStoreClock } from '../helpers/store-clock';
import { useTempDir } from '../helpers/temp-dir';
import { failureOf } from '../helpers/claims';

/** The stores' time when each test starts; tests move it on by hand, never waiting. */
const T0 = 1_000_000_000;
const LEASE_MS = 10_000;
const RETENTION_MS = 60_000;

interface RawRow {
  status: string;
  attempts: number;
  next_attempt_at: number;
  leased_by: string | null;
  lease_until: number;
  last_error: string | null;
  delivered_at: number | null;
  outcome: string | null;
}

function entry(key: string, subject: string | null = 'action:1', route = 'actions'): InboxEntry {
  return {
    key,
    subject,
    route,
    format: 'json',
    ip: '127.0.0.1',
    path: `/${route}`,
    receivedAt: new Date(T0),
    fields: '{}',
  };
}

describe('SqliteStore inbox: a worker’s claim on a row (lease, attempts, backoff, commit)', () => {
  const storeTime = useStoreClock(T0);
  const opened: { close(): unknown }[] = [];
  // Before useTempDir's own hook, so that the files are closed before their directory goes.
  afterEach(() => {
    for (const handle of opened.splice(0).reverse()) handle.close();
  });
  const dir = useTempDir('impact-sqlite-claim-');

  function open(): { store: SqliteStore; raw: (id: number) => RawRow; db: Database.Database } {
    const file = path.join(dir(), 'postbacks.db');
    const store = new SqliteStore({
      path: file,
      inboxLeaseMs: LEASE_MS,
      leaseMs: LEASE_MS,
      retentionMs: RETENTION_MS,
      // A direct claim refused while the inbox holds its subject answers quickly.
      lockTimeoutMs: 50,
    });
    opened.push(store);
    // A second connection, as an operator's tool would open the file, to read what was written.
    const db = new Database(file);
    opened.push(db);
    const select = db.prepare('SELECT * FROM postback_inbox WHERE id = ?');
    return { store, db, raw: (id) => select.get(id) as RawRow };
  }

  async function take(store: SqliteStore): Promise<InboxClaim<undefined>> {
    const claim = await store.inbox.next();
    if (claim === null) throw new Error('no row was due');
    return claim;
  }

  /** A direct claim (reconciliation's, or a postback's outside the inbox) of `subject`. */
  async function claimDirectly(store: SqliteStore, key: string, subject: string): Promise<StoreClaim<undefined>> {
    const result = await store.begin(key, subject);
    if (typeof result === 'string') throw new Error(`no claim: ${result}`);
    return result;
  }

  const record = (status: string): JournalRecord => ({ status, payout: '5.00', trigger: 'lifecycle' });

  it('a taken row is leased to its claim for the inbox lease, and the claim is not transactional', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const claim = await take(store);
    expect(raw(claim.row.id)).to.include({ lease_until: T0 + LEASE_MS });
    expect(claim.leaseMs).to.equal(LEASE_MS);
    // Listeners' own writes do not commit or roll back with it: the router must keep the claim
    // until they finish rather than drop it at the timeout.
    expect(claim.transactional).to.equal(false);
    expect(await store.inbox.next()).to.equal(null);
  });

  it('a retry’s backoff makes the row due only once its delay has passed', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const claim = await take(store);
    await claim.start?.();
    expect(await claim.recordFailure('listener threw', 5000)).to.equal(true);
    expect(raw(claim.row.id)).to.include({
      status: 'retrying',
      attempts: 1,
      next_attempt_at: T0 + 5000,
      last_error: 'listener threw',
      leased_by: null,
    });

    storeTime.set(T0 + 4999);
    expect(await store.inbox.next()).to.equal(null);
    storeTime.set(T0 + 5000);
    const again = await take(store);
    expect(again.row).to.include({ id: claim.row.id, attempts: 1 });
  });

  it('a failure recorded as dead is all or nothing: when the action’s hold cannot be let go, the row is not dead either', async () => {
    const { store, raw, db } = open();
    await store.inbox.add(entry('k1'));
    const claim = await take(store);
    await claim.start?.();
    // A write that fails halfway (the disk full, the lock taken past the busy timeout), made real by a trigger.
    db.exec(`CREATE TRIGGER refuse_unhold BEFORE DELETE ON postback_holds BEGIN SELECT RAISE(ABORT, 'disk full'); END`);
    const error = await failureOf(() => claim.recordFailure('listener threw', null));
    expect((error as Error).message).to.include('disk full');
    // Not dead without its `dead` event: the lease lapses and the next worker gives the row up, and says so.
    expect(raw(claim.row.id)).to.include({ status: 'pending', attempts: 1, last_error: null });
    db.exec('DROP TRIGGER refuse_unhold');
    storeTime.set(T0 + LEASE_MS);
    expect((await take(store)).row).to.include({ id: claim.row.id, attempts: 1 });
  });

  it('recordFailure answers false once the lease was lost to another worker, and changes nothing', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const first = await take(store);
    storeTime.set(T0 + LEASE_MS);
    const second = await take(store);
    expect(second.row.id).to.equal(first.row.id);
    const before = raw(first.row.id);

    expect(await first.recordFailure('late failure', 1000)).to.equal(false);
    expect(raw(first.row.id)).to.deep.equal(before);
    expect(before).to.include({ status: 'pending', last_error: null, lease_until: T0 + 2 * LEASE_MS });
    // The worker that holds it now still delivers it: the stale one did not drop its hold.
    await second.commit(record('PENDING'), 'delivered');
    expect(raw(first.row.id)).to.include({ status: 'delivered' });
  });

  it('a renewed lease keeps other workers and direct claims of the action off the row past the original lease', async () => {
    const { store } = open();
    await store.inbox.add(entry('k1'));
    const claim = await take(store);
    storeTime.set(T0 + LEASE_MS - 1000);
    await claim.renew?.();

    storeTime.set(T0 + LEASE_MS + 1000);
    expect(await store.inbox.next()).to.equal(null);
    // Reconciliation (a direct claim) must wait too: the subject's hold was renewed with the row.
    expect(await store.begin('reconcile-key', 'action:1')).to.equal('in-flight');
    await claim.commit(record('PENDING'), 'delivered');
    expect((await store.inbox.list())[0]).to.include({ status: 'delivered' });
  });

  it('a renewed lease lapses in its turn: the row can then be taken by another worker', async () => {
    const { store } = open();
    await store.inbox.add(entry('k1'));
    const claim = await take(store);
    storeTime.set(T0 + 1000);
    await claim.renew?.();
    storeTime.set(T0 + 1000 + LEASE_MS - 1);
    expect(await store.inbox.next()).to.equal(null);
    storeTime.set(T0 + 1000 + LEASE_MS);
    expect((await take(store)).row.id).to.equal(claim.row.id);
  });

  it('renewing a claim whose lease was lost throws ClaimLostError and leaves the new holder’s lease alone', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const first = await take(store);
    storeTime.set(T0 + LEASE_MS);
    const second = await take(store);
    storeTime.set(T0 + LEASE_MS + 500);

    const error = await failureOf(() => first.renew?.());
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message).to.include(`inbox row ${first.row.id}`);
    expect(raw(second.row.id)).to.include({ lease_until: T0 + 2 * LEASE_MS });
  });

  it('starting an attempt whose lease was lost rejects with ClaimLostError (never throws) and counts nothing', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const first = await take(store);
    storeTime.set(T0 + LEASE_MS);
    await take(store);

    // The interface promises a rejection: a caller that only attaches .catch must not see a throw.
    let started: Promise<void> | undefined;
    expect(() => {
      started = first.start?.();
    }).not.to.throw();
    const error = await failureOf(() => started);
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message).to.include(`inbox row ${first.row.id}`);
    expect(raw(first.row.id)).to.include({ attempts: 0 });
  });

  it('a delivery whose lease was lost to another worker is refused with ClaimLostError and writes nothing', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const first = await take(store);
    storeTime.set(T0 + LEASE_MS);
    const second = await take(store);

    const error = await failureOf(() => first.commit(record('APPROVED'), 'delivered'));
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message).to.include(`inbox row ${first.row.id} is no longer held`);
    expect(raw(first.row.id)).to.include({ status: 'pending', delivered_at: null });
    expect(store.readJournal(['action:1'])).to.deep.equal([null]);

    await second.commit(record('PENDING'), 'delivered');
    expect(store.readJournal(['action:1'])).to.deep.equal([record('PENDING')]);
  });

  it('a row without a subject (catalog) is taken, and its delivery after the lease was lost is refused', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('c1', null, 'catalog'));
    const first = await take(store);
    expect(first.row.subject).to.equal(null);
    storeTime.set(T0 + LEASE_MS);
    const second = await take(store);

    // No subject hold to check: the row's own lease is all that fences the stale worker.
    const error = await failureOf(() => first.commit(null, 'delivered'));
    expect(error).to.be.instanceOf(ClaimLostError);
    expect(raw(first.row.id)).to.include({ status: 'pending', delivered_at: null });

    await second.commit(null, 'delivered');
    expect(raw(first.row.id)).to.include({ status: 'delivered', outcome: 'delivered', delivered_at: storeTime.now() });
  });

  it('a row without a subject is delivered without touching the journal, even when given a record', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('c1', null, 'catalog'));
    const claim = await take(store);
    await claim.commit(record('PENDING'), 'delivered');
    expect(raw(claim.row.id)).to.include({ status: 'delivered' });
  });

  it('a delivery whose action reconciliation took over after the lease lapsed is refused, and reconciliation’s record stays', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const stale = await take(store);
    // Nobody took the row since, so it is still leased to `stale`; but the action's hold lapsed
    // with it, and a direct claim took the action.
    storeTime.set(T0 + LEASE_MS);
    const direct = await claimDirectly(store, 'reconcile-key', 'action:1');

    const error = await failureOf(() => stale.commit(record('PENDING'), 'delivered'));
    expect(error).to.be.instanceOf(ClaimLostError);
    expect(raw(stale.row.id)).to.include({ status: 'pending' });

    await direct.commit(record('APPROVED'), 'delivered');
    expect(store.readJournal(['action:1'])).to.deep.equal([record('APPROVED')]);
  });

  it('a delivery committed again after its answer was lost succeeds and writes nothing twice', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const claim = await take(store);
    await claim.commit(record('PENDING'), 'delivered');
    const delivered = raw(claim.row.id);
    expect(delivered).to.include({ status: 'delivered', delivered_at: T0 });

    // Since then the action moved on (a later postback, through a direct claim).
    storeTime.set(T0 + 1000);
    const later = await claimDirectly(store, 'k2', 'action:1');
    await later.commit(record('APPROVED'), 'delivered');

    storeTime.set(T0 + 2000);
    await claim.commit(record('PENDING'), 'delivered');
    expect(raw(claim.row.id)).to.deep.equal(delivered);
    expect(store.readJournal(['action:1'])).to.deep.equal([record('APPROVED')]);
  });

  it('a row deleted while it was delivered: its commit is refused, and the rows committed with it are still written', async () => {
    const { store, raw, db } = open();
    await store.inbox.add(entry('k1', 'action:1'));
    await store.inbox.add(entry('k2', 'action:2'));
    const gone = await take(store);
    const kept = await take(store);
    // An operator clears the row by hand while its listeners run.
    db.prepare('DELETE FROM postback_inbox WHERE id = ?').run(gone.row.id);

    // Committed in the same turn, so in one group transaction.
    const [goneResult, keptResult] = await Promise.allSettled([
      gone.commit(record('PENDING'), 'delivered'),
      kept.commit(record('APPROVED'), 'delivered'),
    ]);
    expect(goneResult.status).to.equal('rejected');
    expect((goneResult as PromiseRejectedResult).reason).to.be.instanceOf(ClaimLostError);
    expect(keptResult.status).to.equal('fulfilled');
    expect(raw(kept.row.id)).to.include({ status: 'delivered' });
    expect(store.readJournal(['action:2'])).to.deep.equal([record('APPROVED')]);
  });

  it('a delivery with no record to write leaves the action’s last record for the next row', async () => {
    const { store } = open();
    await store.inbox.add(entry('k1'));
    await store.inbox.add(entry('k2'));
    await store.inbox.add(entry('k3'));
    await (await take(store)).commit(record('PENDING'), 'delivered');
    // A stale or duplicate postback: nothing new about the action.
    await (await take(store)).commit(null, 'stale');
    const third = await take(store);
    expect(third.previous).to.deep.equal(record('PENDING'));
  });

  it('the journal record a claim reads is forgotten once the retention has passed', async () => {
    const { store } = open();
    await store.inbox.add(entry('k1'));
    await (await take(store)).commit(record('PENDING'), 'delivered');
    await store.inbox.add(entry('k2'));

    storeTime.set(T0 + RETENTION_MS - 1);
    const before = await take(store);
    expect(before.previous).to.deep.equal(record('PENDING'));
    await before.giveBack?.();

    storeTime.set(T0 + RETENTION_MS);
    const after = await take(store);
    expect(after.row.id).to.equal(before.row.id);
    expect(after.previous).to.equal(null);
  });

  it('giving a row back counts off only the attempt it started, and lets the row be taken again at once', async () => {
    const { store, raw } = open();
    await store.inbox.add(entry('k1'));
    const first = await take(store);
    await first.start?.();
    expect(await first.recordFailure('listener threw', 0)).to.equal(true);
    expect(raw(first.row.id)).to.include({ attempts: 1 });

    // Given back before its attempt began (the router was closing): the earlier attempt stays.
    const notStarted = await take(store);
    await notStarted.giveBack?.();
    expect(raw(first.row.id)).to.include({ attempts: 1, leased_by: null, lease_until: 0 });

    // Given back after it began: that attempt alone is taken back. The action's hold went with
    // the lease, so the row is due again now rather than when the hold would have lapsed.
    const started = await take(store);
    await started.start?.();
    expect(raw(first.row.id)).to.include({ attempts: 2 });
    await started.giveBack?.();
    expect(raw(first.row.id)).to.include({ attempts: 1 });
    expect((await take(store)).row.id).to.equal(first.row.id);
  });

  it('an action row is delivered as superseded once reconciliation read the action after it arrived; a clearing row is not', async () => {
    const { store } = open();
    const byReconciliation: JournalRecord = {
      status: 'APPROVED',
      trigger: 'reconciliation',
      receivedAt: new Date(T0 + 1000).toISOString(),
    };
    for (const subject of ['action:1', 'action:2']) {
      const direct = await claimDirectly(store, `reconcile:${subject}`, subject);
      await direct.commit(byReconciliation, 'delivered');
    }
    await store.inbox.add(entry('k1', 'action:1', 'actions'));
    await store.inbox.add(entry('k2', 'action:2', 'clearing'));

    const lifecycle = await take(store);
    expect(lifecycle.row.route).to.equal('actions');
    expect(lifecycle.superseded).to.equal(true);
    const clearing = await take(store);
    expect(clearing.row.route).to.equal('clearing');
    expect(clearing.previous).to.deep.equal(byReconciliation);
    expect(clearing.superseded).to.equal(false);
  });

  it('an action row read before reconciliation’s own read is not superseded', async () => {
    const { store } = open();
    const direct = await claimDirectly(store, 'reconcile', 'action:1');
    await direct.commit(
      { status: 'PENDING', trigger: 'reconciliation', receivedAt: new Date(T0 - 1).toISOString() },
      'delivered',
    );
    await store.inbox.add(entry('k1'));
    expect((await take(store)).superseded).to.equal(false);
  });
});
