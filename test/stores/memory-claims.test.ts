import { mock } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { expect } from 'chai';
import { MemoryStore, type BeginResult, type JournalRecord, type StoreClaim } from '../../lib';
import { ClaimLostError, isClaimLost } from '../../lib/stores/claim-lost';
import { GroupCommit } from '../../lib/stores/sqlite/group-commit';
import { MemoryKeys } from '../../lib/stores/memory/memory-keys';
import { retryWhileBusy } from '../../lib/stores/retry-while-busy';
import { useStoreClock } from '../helpers/store-clock';

/** The store's time when each test starts; tests move it on by hand, never waiting. */
const T0 = 1_000_000_000;
const LEASE_MS = 1_000;
const DAY_MS = 24 * 60 * 60 * 1000;

/** MemoryStore's claim: its commit, release and renew answer at once, never with a promise. */
type MemoryClaim = Omit<StoreClaim<undefined>, 'commit' | 'release' | 'renew'> & {
  commit(...args: Parameters<StoreClaim<undefined>['commit']>): void;
  release(...args: Parameters<StoreClaim<undefined>['release']>): void;
  renew(): void;
};

function claimOf(result: BeginResult<undefined>): MemoryClaim {
  if (typeof result === 'string') throw new Error(`expected a claim, got ${result}`);
  return result as MemoryClaim;
}

/** Runs `work` and gives what it threw (MemoryStore's commit and renew throw synchronously). */
function failureOf(work: () => unknown): unknown {
  try {
    work();
  } catch (error) {
    return error;
  }
  throw new Error('expected it to fail');
}

/** What a lapsed claim's commit or renew must throw: a ClaimLostError naming what it lost. */
function expectClaimLost(error: unknown, what: string): void {
  expect(error).to.be.instanceOf(ClaimLostError);
  expect((error as ClaimLostError).message).to.equal(
    `the claim of ${what}: another claim took it over after this claim's lease lapsed`,
  );
  expect(isClaimLost(error)).to.equal(true);
}

describe('MemoryStore claims: holds, lapsed leases and their commits', () => {
  const time = useStoreClock(T0);
  const record: JournalRecord = { status: 'PENDING', payout: '10.00' };
  const later: JournalRecord = { status: 'APPROVED', payout: '10.00' };

  function store(): MemoryStore {
    return new MemoryStore({ leaseMs: LEASE_MS });
  }

  it('keeps 100,000 keys for 7 days with a 5-minute lease by default: a handled key is a duplicate until exactly 7 days on', () => {
    const defaults = new MemoryStore();
    expect([defaults.maxKeys, defaults.maxAgeMs, defaults.leaseMs]).to.deep.equal([100_000, 7 * DAY_MS, 5 * 60_000]);
    claimOf(defaults.begin('k', null)).commit(null, 'delivered');
    time.set(T0 + 7 * DAY_MS - 1);
    expect(defaults.begin('k', null)).to.equal('handled');
    // Retention ends at 7 days to the ms: the key is new again.
    time.set(T0 + 7 * DAY_MS);
    expect(defaults.begin('k', null)).to.be.an('object');
  });

  it('names the option it refuses', () => {
    expect(() => new MemoryStore({ maxKeys: 0 })).to.throw(
      TypeError,
      'option maxKeys must be a positive integer, got 0',
    );
    expect(() => new MemoryStore({ maxAgeMs: -1 })).to.throw(
      TypeError,
      'option maxAgeMs must be a positive integer, got -1',
    );
    expect(() => new MemoryStore({ leaseMs: 1.5 })).to.throw(
      TypeError,
      'option leaseMs must be a positive integer, got 1.5',
    );
  });

  it('holds a subject until its lease ends to the ms, then gives another postback of it a claim', () => {
    const memory = store();
    claimOf(memory.begin('k1', 'action:1'));
    time.set(T0 + LEASE_MS - 1);
    expect(memory.begin('k2', 'action:1')).to.equal('in-flight');
    time.set(T0 + LEASE_MS);
    expect(memory.begin('k2', 'action:1')).to.be.an('object');
  });

  it('answers handled for a committed key even while another postback of its subject holds the subject', () => {
    const memory = store();
    claimOf(memory.begin('k1', 'action:1')).commit(record, 'delivered');
    claimOf(memory.begin('k2', 'action:1'));
    // A copy of the first postback is a duplicate, not a 503 to be retried.
    expect(memory.begin('k1', 'action:1')).to.equal('handled');
    expect(memory.begin('k3', 'action:1')).to.equal('in-flight');
  });

  it('accepts a commit made again after one whose answer was lost, writing nothing over a later record', () => {
    const memory = store();
    const first = claimOf(memory.begin('k1', 'action:1'));
    first.commit(record, 'delivered');
    const second = claimOf(memory.begin('k2', 'action:1'));
    second.commit(later, 'delivered');
    // The first claim's commit is tried again: it was done, so it succeeds and changes nothing.
    expect(() => first.commit(record, 'delivered')).not.to.throw();
    expect(memory.readJournal(['action:1'])).to.deep.equal([later]);
    expect(memory.begin('k1', 'action:1')).to.equal('handled');
  });

  it('accepts a commit made again by a claim without a subject', () => {
    const memory = store();
    const claim = claimOf(memory.begin('k', null));
    claim.commit(null, 'delivered');
    expect(() => claim.commit(null, 'delivered')).not.to.throw();
    expect(memory.begin('k', null)).to.equal('handled');
  });

  it('marks the key of a claim without a subject handled when it commits a record, leaving the journal as it was', () => {
    const memory = store();
    claimOf(memory.begin('k1', 'action:1')).commit(record, 'delivered');
    // A record with no subject to keep it under is not journaled.
    expect(() => claimOf(memory.begin('k2', null)).commit(later, 'delivered')).not.to.throw();
    expect(memory.begin('k2', null)).to.equal('handled');
    expect(memory.readJournal(['action:1'])).to.deep.equal([record]);
  });

  it('refuses the commit of a lapsed claim whose subject another postback holds: ClaimLostError naming the subject, nothing written', () => {
    const memory = store();
    const lapsed = claimOf(memory.begin('k1', 'action:1'));
    time.advance(LEASE_MS);
    const current = claimOf(memory.begin('k2', 'action:1'));
    expectClaimLost(
      failureOf(() => lapsed.commit(record, 'delivered')),
      'action:1',
    );
    expect(memory.readJournal(['action:1'])).to.deep.equal([null]);
    // The subject is still the current claim's: nobody else gets it, and its commit goes through.
    expect(memory.begin('k3', 'action:1')).to.equal('in-flight');
    current.commit(later, 'delivered');
    expect(memory.readJournal(['action:1'])).to.deep.equal([later]);
  });

  it('lets a lapsed claim commit when the postback that took its subject over gave it back with the record unchanged', () => {
    const memory = store();
    const lapsed = claimOf(memory.begin('k1', 'action:1'));
    time.advance(LEASE_MS);
    claimOf(memory.begin('k2', 'action:1')).release('failed');
    // Nobody holds the subject and the journal still has what the lapsed claim read: its work stands.
    expect(() => lapsed.commit(record, 'delivered')).not.to.throw();
    expect(memory.readJournal(['action:1'])).to.deep.equal([record]);
    expect(memory.begin('k1', 'action:1')).to.equal('handled');
  });

  it('refuses the commit of a lapsed claim without a subject once another took its key: ClaimLostError naming the key', () => {
    const memory = store();
    const lapsed = claimOf(memory.begin('k', null));
    time.advance(LEASE_MS);
    const current = claimOf(memory.begin('k', null));
    expectClaimLost(
      failureOf(() => lapsed.commit(null, 'delivered')),
      'k',
    );
    // The key is still the current claim's, in flight until it commits.
    expect(memory.begin('k', null)).to.equal('in-flight');
    current.commit(null, 'delivered');
    expect(memory.begin('k', null)).to.equal('handled');
  });

  it('lets the release of a lapsed claim leave the subject with the postback that took it over', () => {
    const memory = store();
    const lapsed = claimOf(memory.begin('k1', 'action:1'));
    time.advance(LEASE_MS);
    claimOf(memory.begin('k2', 'action:1'));
    lapsed.release('timeout');
    expect(memory.begin('k3', 'action:1')).to.equal('in-flight');
  });

  it('refuses to renew a claim without a subject after its commit, leaving its key handled', () => {
    const memory = store();
    const claim = claimOf(memory.begin('k', null));
    claim.commit(null, 'delivered');
    // A renew timer that fires late must not put a handled key back in flight.
    expectClaimLost(
      failureOf(() => claim.renew()),
      'k',
    );
    expect(memory.begin('k', null)).to.equal('handled');
  });

  it('refuses to renew a lapsed claim whose subject another postback took over, naming the subject', () => {
    const memory = store();
    const lapsed = claimOf(memory.begin('k1', 'action:1'));
    time.advance(LEASE_MS);
    claimOf(memory.begin('k2', 'action:1'));
    // Its own key was not taken: only the subject tells it it lost.
    expectClaimLost(
      failureOf(() => lapsed.renew()),
      'action:1',
    );
  });

  it('refuses to renew a lapsed claim without a subject once another took its key, naming the key', () => {
    const memory = store();
    const lapsed = claimOf(memory.begin('k', null));
    time.advance(LEASE_MS);
    claimOf(memory.begin('k', null));
    expectClaimLost(
      failureOf(() => lapsed.renew()),
      'k',
    );
    // The failed renew extended nothing: the current claim's lease still ends on time.
    time.advance(LEASE_MS - 1);
    expect(memory.begin('k', null)).to.equal('in-flight');
    time.advance(1);
    expect(memory.begin('k', null)).to.be.an('object');
  });
});

describe('MemoryKeys: claims of keys by token', () => {
  const time = useStoreClock(T0);

  function keys(): MemoryKeys {
    return new MemoryKeys({ maxKeys: 1_000, maxAgeMs: 10 * LEASE_MS, leaseMs: LEASE_MS });
  }

  function tokenOf(claim: number | string): number {
    if (typeof claim !== 'number') throw new Error(`expected a token, got ${claim}`);
    return claim;
  }

  it('peeks a key never claimed, and one whose lease ended, as free', () => {
    const table = keys();
    expect(table.peek('never')).to.equal('free');
    tokenOf(table.claim('k'));
    expect(table.peek('k')).to.equal('in-flight');
    time.advance(LEASE_MS);
    expect(table.peek('k')).to.equal('free');
  });

  it('refuses the commit of a claim whose key another claim holds in flight, changing nothing', () => {
    const table = keys();
    const lapsed = tokenOf(table.claim('k'));
    time.advance(LEASE_MS);
    const current = tokenOf(table.claim('k'));
    expect(table.commit('k', lapsed)).to.equal(false);
    expect(table.peek('k')).to.equal('in-flight');
    expect(table.commit('k', current)).to.equal(true);
    expect(table.peek('k')).to.equal('handled');
  });

  it('lets a lapsed claim commit once the claim that took its key over lapsed too, from the ms its lease ends', () => {
    const table = keys();
    const first = tokenOf(table.claim('k'));
    time.advance(LEASE_MS);
    tokenOf(table.claim('k'));
    time.advance(LEASE_MS);
    expect(table.commit('k', first)).to.equal(true);
    expect(table.peek('k')).to.equal('handled');
  });

  it('drops a key whose lease ended exactly now when it checks expiry (every 256th write)', () => {
    const table = keys();
    tokenOf(table.claim('oldest'));
    time.advance(LEASE_MS);
    // Writes 2 to 256: the 256th checks the oldest keys' expiry, and 'oldest' is no longer held.
    for (let index = 2; index <= 256; index += 1) tokenOf(table.claim(`k${index}`));
    expect(table.size).to.equal(255);
  });
});

describe('ClaimLostError', () => {
  it('says what was lost and why, as a ClaimLostError with code claim.lost', () => {
    const error = new ClaimLostError('the claim of action:1');
    expect(error).to.be.instanceOf(Error);
    expect(error.name).to.equal('ClaimLostError');
    expect(error.code).to.equal('claim.lost');
    expect(error.message).to.equal("the claim of action:1: another claim took it over after this claim's lease lapsed");
    expect(String(error)).to.match(/^ClaimLostError: the claim of action:1: /);
  });

  it('is recognised by its code, and anything else a store throws or rejects with is not (null and undefined too)', () => {
    expect(isClaimLost(new ClaimLostError('x'))).to.equal(true);
    expect(isClaimLost(Object.assign(new Error('from another copy of the package'), { code: 'claim.lost' }))).to.equal(
      true,
    );
    for (const other of [new Error('disk full'), 'claim.lost', null, undefined, 0]) {
      expect(isClaimLost(other), String(other)).to.equal(false);
    }
  });
});

describe('retryWhileBusy', () => {
  // Fake timers and Date.now: the pauses are read off the clock, with no real waiting.
  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  });
  afterEach(() => {
    mock.timers.reset();
  });

  /** Runs retryWhileBusy on the fake clock, a ms at a time; gives its answer and when each attempt ran. */
  async function run(answers: readonly string[], timeoutMs: number): Promise<{ result: unknown; at: number[] }> {
    const at: number[] = [];
    const state = { settled: false };
    const result = retryWhileBusy(() => {
      at.push(Date.now());
      return answers[at.length - 1] ?? 'busy';
    }, timeoutMs).finally(() => {
      state.settled = true;
    });
    for (let ms = 0; !state.settled && ms <= timeoutMs * 2; ms += 1) {
      mock.timers.tick(1);
      await nextTurn();
    }
    return { result: await result, at };
  }

  it('tries again after 5 ms, doubling the pause up to 50 ms, the last pause ending at the deadline; then in-flight', async () => {
    const { result, at } = await run([], 300);
    expect(result).to.equal('in-flight');
    expect(at).to.deep.equal([5, 15, 35, 75, 125, 175, 225, 275, 300]);
  });

  it('answers what the first attempt that is not busy answers', async () => {
    const { result, at } = await run(['busy', 'busy', 'handled'], 300);
    expect(result).to.equal('handled');
    expect(at).to.deep.equal([5, 15, 35]);
  });
});

describe('GroupCommit batching', () => {
  function recording(maxBatch?: number): { group: GroupCommit<number, number>; batches: number[][] } {
    const batches: number[][] = [];
    const run = (items: readonly number[]): number[] => {
      batches.push([...items]);
      return [...items];
    };
    return { group: maxBatch === undefined ? new GroupCommit(run) : new GroupCommit(run, maxBatch), batches };
  }

  it('runs no empty batch: neither when a full batch was written before its scheduled flush, nor on flush() with nothing queued', async () => {
    const { group, batches } = recording(2);
    expect(await Promise.all([group.submit(1), group.submit(2)])).to.deep.equal([1, 2]);
    // The flush scheduled by the first submit finds nothing left: no empty transaction (and fsync).
    await nextTurn();
    group.flush();
    expect(batches).to.deep.equal([[1, 2]]);
  });

  it('keeps one flush pending at a time: writes submitted while it is pending all join its batch', async () => {
    const { group, batches } = recording();
    const first = Promise.all([group.submit(1), group.submit(2)]);
    // Submitted as the first batch resolves, then later in that same turn: one batch together.
    const third = first.then(async () => group.submit(3));
    let fourth: Promise<number> | undefined;
    setImmediate(() => {
      fourth = group.submit(4);
    });
    expect(await first).to.deep.equal([1, 2]);
    expect(await third).to.equal(3);
    expect(await fourth).to.equal(4);
    expect(batches).to.deep.equal([
      [1, 2],
      [3, 4],
    ]);
  });
});
