import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { PostgresStore, type InboxClaim, type PgPool, type PgPoolClient } from '../../lib';
import { DATABASE_URL, useTestSchema } from '../helpers/services';

/**
 * The PostgreSQL inbox's row claim driven directly, against a real server: what a failed,
 * timed-out, lost or given-back delivery leaves on its row, what recordFailure answers, and
 * when the row is free to be taken again.
 */
describe("PostgresStore's inbox: a row's claim and what its end leaves on the row", function () {
  this.timeout(20_000);
  const closing: (() => Promise<void>)[] = [];
  // Before the schema's own hooks: stores and pools end before it is dropped.
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
  });
  const schema = useTestSchema();

  const inboxTable = (): string => `"${schema().name}".impact_postbacks_inbox`;

  /** A store of its own pool (another instance, as far as the inbox can tell). */
  function open(options: { lockTimeoutMs?: number } = {}): PostgresStore {
    const store = new PostgresStore({ connectionString: DATABASE_URL, schema: schema().name, ...options });
    closing.push(() => store.close());
    return store;
  }

  /**
   * A store on a real pool that can be made to refuse connections (as one exhausted or cut off
   * from PostgreSQL); `real` is the pool behind it.
   */
  function openRefusable(): { store: PostgresStore<PgPoolClient>; real: pg.Pool; refuse: (on: boolean) => void } {
    const real = new pg.Pool({ connectionString: DATABASE_URL, max: 6 });
    real.on('error', () => undefined);
    let refusing = false;
    const pool: PgPool = {
      connect: () => (refusing ? Promise.reject(new Error('the pool has no connection to give')) : real.connect()),
      end: () => real.end(),
    };
    const store = new PostgresStore<PgPoolClient>({ pool, schema: schema().name });
    closing.push(async () => {
      refusing = false;
      await store.close();
      await real.end();
    });
    return { store, real, refuse: (on) => void (refusing = on) };
  }

  async function addRow(
    store: PostgresStore | PostgresStore<PgPoolClient>,
    options: { actionId?: string; route?: 'actions' | 'clearing'; receivedAt?: Date } = {},
  ): Promise<void> {
    const id = options.actionId ?? '1';
    const route = options.route ?? 'actions';
    expect(
      await store.inbox.add({
        key: `${route}:${randomUUID()}`,
        subject: `action:${id}`,
        route,
        format: 'query',
        ip: '127.0.0.1',
        path: `/impact/${route}`,
        receivedAt: options.receivedAt ?? new Date(),
        fields: JSON.stringify({ ActionId: id, Status: 'PENDING', Payout: '5.00' }),
      }),
    ).to.equal('stored');
  }

  async function take<C>(store: { inbox: { next(): Promise<InboxClaim<C> | null> } }): Promise<InboxClaim<C>> {
    const claim = await store.inbox.next();
    if (claim === null) throw new Error('expected a row to take');
    return claim;
  }

  /** The row as stored, the attempts begun apart included (as `inbox.list()` shows them). */
  async function rowState(store: PostgresStore | PostgresStore<PgPoolClient>) {
    const [row] = await store.inbox.list();
    const { rows } = await schema().pool.query<{ later: boolean }>(
      `SELECT next_attempt_at > now() + interval '30 seconds' AS later FROM ${inboxTable()}`,
    );
    return {
      status: row?.status,
      attempts: row?.attempts,
      lastError: row?.lastError,
      dueLater: rows[0]?.later,
    };
  }

  /** An attempt begun by a process that died during it: counted apart, its end never recorded. */
  async function countedByADeadProcess(attempts: number): Promise<void> {
    await schema().pool.query(
      `INSERT INTO "${schema().name}".impact_postbacks_inbox_attempts (id, started) SELECT id, $1 FROM ${inboxTable()}`,
      [attempts],
    );
  }

  /** Ends the claim's server process, as a lost connection or a restart would, and waits until it is gone. */
  async function loseConnection(claim: InboxClaim<PgPoolClient>): Promise<void> {
    await schema().pool.query('SELECT pg_terminate_backend($1::int, 5000)', [claim.transaction.processID]);
  }

  const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

  /** Commits the claim as delivered: 'committed', or the message it failed with. */
  const commitOf = <C>(claim: InboxClaim<C>): Promise<string> =>
    Promise.resolve()
      .then(() => claim.commit(null, 'delivered'))
      .then(() => 'committed', messageOf);

  it('next() on an empty inbox answers null, and an arrival after is taken', async () => {
    const store = open();
    expect(await store.inbox.next()).to.equal(null);
    await addRow(store);
    const claim = await take(store);
    await claim.giveBack?.();
    expect(claim.row.subject).to.equal('action:1');
  });

  it('a failed attempt undoes what its listeners wrote and records the error, the attempt and the backoff on the row', async () => {
    const store = open();
    const ledger = `"${schema().name}".ledger`;
    await schema().pool.query(`CREATE TABLE ${ledger} (id integer)`);
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    // A listener wrote, then failed: its write must not land with the failure's record.
    await claim.transaction.query(`INSERT INTO ${ledger} VALUES (1)`);
    await claim.release('failed');
    const recorded = await claim.recordFailure('the ledger is down', 60_000);
    const { rows } = await schema().pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${ledger}`);
    expect({
      recorded,
      row: await rowState(store),
      ledgerRows: rows[0],
      takenAgain: await store.inbox.next(),
    }).to.deep.equal({
      recorded: true,
      row: { status: 'retrying', attempts: 1, lastError: 'the ledger is down', dueLater: true },
      ledgerRows: { n: 0 },
      takenAgain: null,
    });
  });

  it('a failed attempt is recorded on the row’s own connection, even while the pool can give no other', async () => {
    const { store, refuse } = openRefusable();
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await claim.release('failed');
    // A pool full of claims each waiting for another connection to record with would never drain.
    refuse(true);
    const recorded = await claim.recordFailure('the ledger is down', 60_000).catch(messageOf);
    refuse(false);
    expect({ recorded, row: await rowState(store) }).to.deep.equal({
      recorded: true,
      row: { status: 'retrying', attempts: 1, lastError: 'the ledger is down', dueLater: true },
    });
  });

  it('a row that began all its attempts is recorded dead without counting another', async () => {
    const store = open();
    await addRow(store);
    await countedByADeadProcess(3);
    const claim = await take(store);
    expect(claim.row.attempts).to.equal(3);
    // The worker gives such a row up without start(): its listeners do not run again.
    const recorded = await claim.recordFailure('inbox row has begun 3 attempts', null);
    expect({ recorded, row: await rowState(store) }).to.deep.equal({
      recorded: true,
      row: { status: 'dead', attempts: 3, lastError: 'inbox row has begun 3 attempts', dueLater: false },
    });
  });

  it('listeners past the timeout: the failure is recorded through another connection and recordFailure answers true', async () => {
    const store = open();
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await claim.release('timeout');
    const recorded = await claim.recordFailure('listener timed out', 60_000);
    expect({ recorded, row: await rowState(store) }).to.deep.equal({
      recorded: true,
      row: { status: 'retrying', attempts: 1, lastError: 'listener timed out', dueLater: true },
    });
    // Its end is final: a late commit must not mark the row delivered.
    const late = await commitOf(claim);
    expect({ late, status: (await rowState(store)).status }).to.deep.equal({
      late: 'this claim was already committed or released',
      status: 'retrying',
    });
  });

  it('listeners past the timeout while the pool gives no connection: recordFailure rejects with that error, and the attempt still counts', async () => {
    const { store, refuse } = openRefusable();
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await claim.release('timeout');
    refuse(true);
    const outcome = await claim.recordFailure('listener timed out', 60_000).then(String, messageOf);
    refuse(false);
    expect({ outcome, row: await rowState(store) }).to.deep.equal({
      outcome: 'the pool has no connection to give',
      row: { status: 'pending', attempts: 1, lastError: null, dueLater: false },
    });
  });

  it('a failed attempt whose commit already ended cannot be committed again, and the row is not marked delivered', async () => {
    const store = open();
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await claim.release('failed');
    expect(await claim.recordFailure('the ledger is down', 60_000)).to.equal(true);
    const late = await commitOf(claim);
    expect({ late, status: (await rowState(store)).status }).to.deep.equal({
      late: 'this claim was already committed or released',
      status: 'retrying',
    });
  });

  it('a commit failing on a listener’s failed statement keeps the row locked until its failure is recorded in the same transaction', async () => {
    const store = open();
    const other = open();
    const done = `"${schema().name}".done`;
    await schema().pool.query(`CREATE TABLE ${done} (id integer PRIMARY KEY); INSERT INTO ${done} VALUES (1)`);
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    // "Already done": the listener catches the error and carries on; the transaction cannot commit.
    await claim.transaction.query(`INSERT INTO ${done} VALUES (1)`).catch(() => undefined);
    const committed = (await commitOf(claim)) === 'committed';
    // Another instance must not take the row before its backoff is set.
    const takenMeanwhile = await other.inbox.next();
    const recorded = await claim.recordFailure('commit failed', 60_000);
    expect({ committed, takenMeanwhile, recorded, row: await rowState(store) }).to.deep.equal({
      committed: false,
      takenMeanwhile: null,
      recorded: true,
      row: { status: 'retrying', attempts: 1, lastError: 'commit failed', dueLater: true },
    });
  });

  it('a failure recorded twice after a failed commit statement never sends a statement on the connection it gave back', async () => {
    const { store, real } = openRefusable();
    const done = `"${schema().name}".done`;
    await schema().pool.query(`CREATE TABLE ${done} (id integer PRIMARY KEY); INSERT INTO ${done} VALUES (0)`);
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await claim.transaction.query(`INSERT INTO ${done} VALUES (0)`).catch(() => undefined);
    expect(await commitOf(claim)).not.to.equal('committed');
    expect(await claim.recordFailure('commit failed', 60_000)).to.equal(true);
    // Every idle connection of the pool, the claim's among them, now runs another's transaction.
    const borrowers = await Promise.all(Array.from({ length: real.idleCount }, () => real.connect()));
    for (const [index, client] of borrowers.entries()) {
      await client.query(`BEGIN; INSERT INTO ${done} VALUES (${index + 1})`);
    }
    const again = await claim.recordFailure('recorded again', 60_000).then(String, messageOf);
    for (const client of borrowers) {
      await client.query('ROLLBACK');
      client.release();
    }
    const { rows } = await schema().pool.query<{ count: number }>(`SELECT count(*)::int AS count FROM ${done}`);
    // A stray COMMIT on a borrowed connection would have made its rows stay.
    expect({ again, rowsLeft: rows[0]?.count, row: await rowState(store) }).to.deep.equal({
      again: 'true',
      rowsLeft: 1,
      row: { status: 'retrying', attempts: 1, lastError: 'recorded again', dueLater: true },
    });
  });

  it('a commit that failed with its connection lost: the failure is recorded through another, and nothing stays checked out of the pool', async () => {
    const { store, real } = openRefusable();
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await loseConnection(claim);
    const committed = (await commitOf(claim)) === 'committed';
    const recorded = await claim.recordFailure('connection lost', 60_000);
    const row = await rowState(store);
    await store.close();
    expect({ committed, recorded, row, checkedOut: real.totalCount - real.idleCount }).to.deep.equal({
      committed: false,
      recorded: true,
      row: { status: 'retrying', attempts: 1, lastError: 'connection lost', dueLater: true },
      checkedOut: 0,
    });
  });

  it('a lost attempt’s failure that comes after another worker began the row is not recorded: false, and the row is the other’s', async () => {
    const { store } = openRefusable();
    const other = open();
    await addRow(store);
    const first = await take(store);
    await first.start?.();
    await loseConnection(first);
    await commitOf(first);
    // The lock went with the connection: another instance takes the row and begins attempt 2.
    const second = await take(other);
    await second.start?.();
    const recorded = await first.recordFailure('connection lost', 60_000);
    await second.commit(null, 'delivered');
    expect({ recorded, row: await rowState(other) }).to.deep.equal({
      recorded: false,
      row: { status: 'delivered', attempts: 2, lastError: null, dueLater: false },
    });
  });

  it('a claim given back after its commit failed keeps the attempt counted', async () => {
    const { store } = openRefusable();
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await loseConnection(claim);
    await commitOf(claim);
    // The router closes now: the attempt began and ended, it is not one cut short.
    await claim.giveBack?.();
    expect(await rowState(store)).to.deep.equal({ status: 'pending', attempts: 1, lastError: null, dueLater: false });
  });

  it('a failure recorded after the claim was given back changes nothing and answers false; the row is free at once', async () => {
    const store = open();
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await claim.giveBack?.();
    const recorded = await claim.recordFailure('too late', 60_000).catch(messageOf);
    const again = await take(store);
    const row = await rowState(store);
    await again.giveBack?.();
    expect({ recorded, row }).to.deep.equal({
      recorded: false,
      row: { status: 'pending', attempts: 0, lastError: null, dueLater: false },
    });
  });

  it('giving back a claim whose attempt was never counted leaves the attempts begun before it counted', async () => {
    const store = open();
    await addRow(store);
    await countedByADeadProcess(1);
    const claim = await take(store);
    // start() was never called (or failed): there is no count of this claim's to take back.
    await claim.giveBack?.();
    expect(await rowState(store)).to.deep.equal({ status: 'pending', attempts: 1, lastError: null, dueLater: false });
  });

  it('a failure that cannot be recorded on the row’s lost connection is reported, and the row is free to be taken again', async () => {
    const { store } = openRefusable();
    await addRow(store);
    const claim = await take(store);
    await claim.start?.();
    await loseConnection(claim);
    await claim.release('failed');
    const outcome = await claim.recordFailure('the ledger is down', 60_000).then(
      (recorded) => `answered ${String(recorded)}`,
      () => 'rejected',
    );
    const again = await take(store);
    await again.giveBack?.();
    expect({ outcome, attemptsSeenByTheNext: again.row.attempts }).to.deep.equal({
      outcome: 'rejected',
      attemptsSeenByTheNext: 1,
    });
  });

  it('a row whose action another claim holds past lockTimeoutMs is left for the next round, unlocked, and taken once the action is free', async () => {
    const store = open({ lockTimeoutMs: 100 });
    await addRow(store, { actionId: '7' });
    const holder = await store.begin(`actions:${randomUUID()}`, 'action:7');
    if (typeof holder !== 'object') throw new Error('expected the action to be claimed');
    const whileHeld = await store.inbox.next().then(
      (claim) => claim,
      (error: unknown) => `rejected: ${messageOf(error)}`,
    );
    await holder.release('failed');
    const claim = await take(store);
    await claim.giveBack?.();
    expect({ whileHeld, taken: claim.row.subject }).to.deep.equal({ whileHeld: null, taken: 'action:7' });
  });

  it('next() reports a database failure, rather than answering that there is no work', async () => {
    const store = open();
    await addRow(store);
    // The inbox's function dropped by hand: taking a row fails with PostgreSQL's own error.
    await schema().pool.query(`DROP FUNCTION "${schema().name}".impact_postbacks_inbox_next_v5(integer)`);
    const outcome = await store.inbox.next().then(
      (claim) => claim,
      (error: unknown) => (error as { code?: string }).code,
    );
    expect(outcome).to.equal('42883');
  });

  it('an action row is superseded once reconciliation read the action after the row arrived; a clearing row of it is not', async () => {
    const store = open();
    const arrived = new Date(Date.now() - 60_000);
    await addRow(store, { actionId: '8', route: 'actions', receivedAt: arrived });
    // Reconciliation read the action from impact.com a minute after the row arrived.
    await schema().pool.query(
      `INSERT INTO "${schema().name}".impact_postbacks_journal (subject, state, expires_at)
        VALUES ('action:8', $1, now() + interval '1 day')`,
      [JSON.stringify({ status: 'APPROVED', trigger: 'reconciliation', receivedAt: new Date().toISOString() })],
    );
    const lifecycle = await take(store);
    const superseded = [lifecycle.row.route, lifecycle.superseded];
    await lifecycle.commit(null, 'stale');
    // Clearing comes after the final state by definition: reconciliation never makes it stale.
    await addRow(store, { actionId: '8', route: 'clearing', receivedAt: arrived });
    const clearing = await take(store);
    await clearing.giveBack?.();
    expect({ superseded, clearing: [clearing.row.route, clearing.superseded] }).to.deep.equal({
      superseded: ['actions', true],
      clearing: ['clearing', false],
    });
  });
});
