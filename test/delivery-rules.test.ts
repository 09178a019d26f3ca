import { EventEmitter } from 'node:events';
import { expect } from 'chai';
import request from 'supertest';
import path from 'node:path';
import {
  MemoryStore,
  SqliteStore,
  type BeginResult,
  type PostbackError,
  type PostbackEvent,
  type PostbackStore,
  type StoreClaim,
} from '../lib';
import { createClaimApplier, Pending, type DeliveryOutcome } from '../lib/delivery/apply-claim';
import { ABANDONED, ClaimUnit, ClaimUnits } from '../lib/delivery/claim-unit';
import { createInboxDelivery, type InboxSettings } from '../lib/delivery/inbox';
import type { InboxClaim, InboxRow, StoreInbox } from '../lib/stores/store';
import { watchPackageTimers } from './harness/package-timers';
import { ClaimLostError } from '../lib/stores/claim-lost';
import { createDirectDelivery } from '../lib/delivery/direct';
import { useTempDir } from './helpers/temp-dir';
import { isThenable, runListeners } from '../lib/delivery/call-listeners';
import { listenerFailure } from '../lib/delivery/listener-failure';
import { createApp } from './helpers/create-app';
import { lifecycle } from './harness/impact';
import { FaultyStore, Gate, InjectedFault } from './harness/faulty-store';
import { until } from './harness/until';

/** The dedupe key of `ActionId=1`. */
const KEY1 = 'actions:rXujlCk0EbW8IU93Oqi2EvHaUFlmu2m7Zjl3U47dzVY';

type Claim = StoreClaim<undefined>;

/** A MemoryStore whose claims have some of their parts replaced. */
function storeWith(inner: MemoryStore, change: (claim: Claim) => Partial<Claim>): PostbackStore {
  const store = Object.create(inner) as MemoryStore;
  return Object.assign(store, {
    begin: (key: string, subject: string | null): BeginResult<undefined> => {
      const result = inner.begin(key, subject);
      if (typeof result !== 'object') return result;
      return Object.assign(Object.create(result) as Claim, change(result));
    },
  });
}

/** A commit that throws each error of `errors` in turn (`null`: goes through), counting its calls. */
function commits(errors: (Error | null)[]): { count: number; change: (claim: Claim) => Partial<Claim> } {
  const counter = {
    count: 0,
    change: (claim: Claim): Partial<Claim> => ({
      commit: (record, outcome) => {
        const error = errors[counter.count];
        counter.count += 1;
        if (error !== undefined && error !== null) throw error;
        return claim.commit(record, outcome);
      },
    }),
  };
  return counter;
}

/** A listener for a plain EventEmitter that answers later, as the applier allows. */
function later(listener: () => Promise<void>): () => unknown {
  return listener;
}

/** Error events as plain data: code, message and the cause itself (compared by identity). */
function reports(errors: readonly PostbackError[]): { code: string; message: string; cause: unknown }[] {
  return errors.map((error) => ({ code: error.code, message: error.message, cause: error.cause }));
}

/** An error event as plain data: its code, its message, and what its cause said. */
function described(error: PostbackError): unknown {
  const cause: unknown = error.cause;
  return {
    code: error.code,
    message: error.message,
    cause: cause instanceof Error ? cause.message : cause,
  };
}

describe('delivery rules', () => {
  describe('listenerFailure', () => {
    it('replaces a token quoted URL-encoded in the message by [token]', () => {
      const error = listenerFailure('action', new Error('GET /impact?token=a%20b%2Fc failed'), ['a b/c']);
      expect(error.message).to.equal('a "action" listener failed: GET /impact?token=[token] failed');
    });

    it('keeps a message of exactly 300 characters whole, and cuts one of 301 with an ellipsis', () => {
      const exact = 'x'.repeat(300);
      const longer = 'y'.repeat(301);
      expect([
        listenerFailure('action', new Error(exact), []).message,
        listenerFailure('action', new Error(longer), []).message,
      ]).to.deep.equal([`a "action" listener failed: ${exact}`, `a "action" listener failed: ${'y'.repeat(300)}…`]);
    });
  });

  describe('isThenable and runListeners', () => {
    it('takes a function with a then method for a thenable, and undefined, null and a string for none', () => {
      const thenableFunction = Object.assign(() => undefined, { then: () => undefined });
      expect([isThenable(thenableFunction), isThenable(undefined), isThenable(null), isThenable('x')]).to.deep.equal([
        true,
        false,
        false,
        false,
      ]);
    });

    it('gives the failures of synchronous listeners at once, not as a promise', () => {
      const emitter = new EventEmitter();
      emitter.on('action', () => undefined);
      emitter.on('action', () => {
        throw new Error('boom');
      });
      const result = runListeners(emitter, 'action', []);
      expect(result).to.be.an('array');
      expect((result as unknown[]).map((failure) => (failure as Error).message)).to.deep.equal(['boom']);
    });
  });

  describe('direct delivery answers', () => {
    it('a listener that fails: 500, its own error event, then listener.failed with the failure as cause', async () => {
      const { app, postbacks, events } = createApp({}, { listen: false });
      postbacks.on('action', () => {
        throw new Error('database down');
      });
      const res = await request(app).get('/impact/actions?ActionId=1');
      expect({ status: res.status, text: res.text, errors: events.error.map(described) }).to.deep.equal({
        status: 500,
        text: 'listener.failed: the postback could not be handled; retry later',
        errors: [
          { code: 'listener.failed', message: 'a "action" listener failed: database down', cause: 'database down' },
        ],
      });
      // The event itself is the one reported with the listener's message; the answer's error keeps the cause too.
    });

    it('no listener for the event: 503 listener.missing naming the event', async () => {
      const { app, events } = createApp({}, { listen: false });
      const res = await request(app).get('/impact/actions?ActionId=1');
      expect({ status: res.status, text: res.text, errors: events.error.map(described) }).to.deep.equal({
        status: 503,
        text: 'listener.missing: nothing listens for "action" events; retry later',
        errors: [
          {
            code: 'listener.missing',
            message: 'nothing listens for "action" events; retry later',
            cause: undefined,
          },
        ],
      });
    });

    it('a stale postback nobody listens for: 200 committed, no action and no error', async () => {
      const { app, postbacks, events } = createApp({ ordering: 'final-states' }, { listen: false });
      const actions: string[] = [];
      postbacks.on('action', (event) => void actions.push(event.meta.key));
      await request(app)
        .get(lifecycle('9', 'APPROVED', '5.00'))
        .expect(200);
      postbacks.removeAllListeners('stale');
      const res = await request(app).get(lifecycle('9', 'PENDING', '5.00'));
      const again = await request(app).get(lifecycle('9', 'PENDING', '5.00'));
      expect({
        status: res.status,
        again: again.status,
        actions: actions.length,
        errors: events.error.map(described),
      }).to.deep.equal({ status: 200, again: 200, actions: 1, errors: [] });
    });

    it('a listener past the listener timeout: 503 listener.timeout naming the timeout', async () => {
      const { app, postbacks, events } = createApp({ listenerTimeout: 50 }, { listen: false });
      const gate = new Gate();
      postbacks.on('action', () => gate.wait());
      const res = await request(app).get('/impact/actions?ActionId=1');
      gate.open();
      await postbacks.close({ timeoutMs: 2000 });
      expect({ status: res.status, text: res.text, errors: events.error.map(described) }).to.deep.equal({
        status: 503,
        text: 'listener.timeout: listeners took longer than 50 ms; retry later',
        errors: [
          {
            code: 'listener.timeout',
            message: 'listeners took longer than 50 ms; retry later',
            cause: undefined,
          },
        ],
      });
    });

    it('a store whose begin throws: 503 store.failed, the store unavailable, the fault as cause', async () => {
      const store = new FaultyStore(new MemoryStore());
      store.inject({ op: 'begin', fault: { kind: 'throw' } });
      const { app, events } = createApp({ store });
      const res = await request(app).get('/impact/actions?ActionId=1');
      expect({ status: res.status, text: res.text, errors: events.error.map(described) }).to.deep.equal({
        status: 503,
        text: 'store.failed: the store is unavailable; retry later',
        errors: [
          {
            code: 'store.failed',
            message: 'the store is unavailable; retry later',
            cause: `injected fault: begin #1 (${KEY1}) thrown`,
          },
        ],
      });
      expect(events.error[0]?.cause).to.be.instanceOf(InjectedFault);
    });

    it('a store whose begin does not answer in time: 503, the cause naming the timeout', async () => {
      const store = new FaultyStore(new MemoryStore());
      store.inject({ op: 'begin', fault: { kind: 'hang' } });
      const { app, postbacks, events } = createApp({ store, listenerTimeout: 50 });
      const res = await request(app).get('/impact/actions?ActionId=1');
      store.heal();
      await postbacks.close({ timeoutMs: 1000 });
      expect({ status: res.status, text: res.text, errors: events.error.map(described) }).to.deep.equal({
        status: 503,
        text: 'store.failed: the store is unavailable; retry later',
        errors: [
          {
            code: 'store.failed',
            message: 'the store is unavailable; retry later',
            cause: 'the store did not answer within 50 ms',
          },
        ],
      });
    });

    it('a postback the store finds in flight: 503 postback.in_flight', async () => {
      const inner = new MemoryStore();
      const store = Object.assign(Object.create(inner) as MemoryStore, {
        begin: (): BeginResult<undefined> => 'in-flight',
      });
      const { app, events } = createApp({ store });
      const res = await request(app).get('/impact/actions?ActionId=1');
      expect({ status: res.status, text: res.text, errors: events.error.length }).to.deep.equal({
        status: 503,
        text: 'postback.in_flight: the same postback or action is being handled right now; retry later',
        errors: 0,
      });
    });

    it('renews the claim while listeners run, and reports a renewal that fails with its cause', async () => {
      const store = new FaultyStore(new MemoryStore({ leaseMs: 30 }));
      store.inject({ op: 'renew', fault: { kind: 'throw' } });
      const { app, postbacks, events } = createApp({ store, listenerTimeout: 5000 }, { listen: false });
      const gate = new Gate();
      postbacks.on('action', () => gate.wait());
      const answer = request(app).get('/impact/actions?ActionId=1');
      const sent = answer.then((res) => res);
      await until(() => store.count('renew') >= 3, 5000);
      gate.open();
      const res = await sent;
      expect({ status: res.status, errors: events.error.map(described) }).to.deep.equal({
        status: 200,
        errors: [
          {
            code: 'store.failed',
            message: 'the store failed to renew a claim',
            cause: `injected fault: renew #1 (${KEY1}) thrown`,
          },
        ],
      });
    });
  });

  describe('commits and releases', () => {
    it('a transactional claim whose commit throws: 503 store failure with its cause, and no second commit', async () => {
      const counter = commits([new Error('disk full')]);
      const store = storeWith(new MemoryStore(), (claim) => ({ ...counter.change(claim), transactional: true }));
      const { app, postbacks, events } = createApp({ store });
      const res = await request(app).get('/impact/actions?ActionId=1');
      await postbacks.close({ timeoutMs: 2000 });
      expect({
        status: res.status,
        text: res.text,
        commits: counter.count,
        errors: events.error.map(described),
      }).to.deep.equal({
        status: 503,
        text: 'store.failed: the store failed to record the postback; retry later',
        commits: 1,
        errors: [
          { code: 'store.failed', message: 'the store failed to record the postback; retry later', cause: 'disk full' },
        ],
      });
    });

    it('a commit that finds the claim lost: 503 taken over, with the loss as cause, and no second commit', async () => {
      const lost = new ClaimLostError('the claim of action 1');
      const counter = commits([lost]);
      const store = storeWith(new MemoryStore(), counter.change);
      const { app, postbacks, events } = createApp({ store });
      const res = await request(app).get('/impact/actions?ActionId=1');
      await postbacks.close({ timeoutMs: 2000 });
      expect({
        status: res.status,
        text: res.text,
        commits: counter.count,
        errors: events.error.map(described),
      }).to.deep.equal({
        status: 503,
        text: 'store.failed: another delivery took this postback over; retry later',
        commits: 1,
        errors: [
          {
            code: 'store.failed',
            message: 'another delivery took this postback over; retry later',
            cause: lost.message,
          },
        ],
      });
    });

    it('a failed commit is tried again, and stops once a retry finds the claim lost', async () => {
      const lost = new ClaimLostError('the claim of action 1');
      const counter = commits([new Error('disk full'), lost]);
      const store = storeWith(new MemoryStore(), counter.change);
      const { app, postbacks, events } = createApp({ store });
      const res = await request(app).get('/impact/actions?ActionId=1');
      await postbacks.close({ timeoutMs: 5000 });
      expect({ status: res.status, commits: counter.count, errors: events.error.map(described) }).to.deep.equal({
        status: 503,
        commits: 2,
        errors: [
          { code: 'store.failed', message: 'the store failed to record the postback; retry later', cause: 'disk full' },
          {
            code: 'store.failed',
            message: 'another delivery took this postback over; retry later',
            cause: lost.message,
          },
        ],
      });
    });

    it('a commit that does not answer in time: 503, the cause naming the timeout; it lands later', async () => {
      const store = new FaultyStore(new MemoryStore());
      store.inject({ op: 'commit', fault: { kind: 'hang' } });
      const { app, postbacks, events } = createApp({ store, listenerTimeout: 50 });
      const res = await request(app).get('/impact/actions?ActionId=1');
      store.heal();
      await postbacks.close({ timeoutMs: 2000 });
      expect({ status: res.status, errors: events.error.map(described) }).to.deep.equal({
        status: 503,
        errors: [
          {
            code: 'store.failed',
            message: 'the store failed to record the postback; retry later',
            cause: 'the store did not commit within 50 ms',
          },
        ],
      });
    });

    it('a release that rejects is reported with its cause, and the answer stays the listener failure', async () => {
      const store = new FaultyStore(new MemoryStore());
      store.inject({ op: 'release', fault: { kind: 'fail' } });
      const { app, postbacks, events } = createApp({ store }, { listen: false });
      postbacks.on('action', () => {
        throw new Error('database down');
      });
      const res = await request(app).get('/impact/actions?ActionId=1');
      await until(() => events.error.length >= 2, 2000);
      expect({ status: res.status, errors: events.error.map(described) }).to.deep.equal({
        status: 500,
        errors: [
          { code: 'listener.failed', message: 'a "action" listener failed: database down', cause: 'database down' },
          {
            code: 'store.failed',
            message: 'the store failed to release a postback',
            cause: `injected fault: release #1 (${KEY1}) failed`,
          },
        ],
      });
    });

    it('a synchronous store and listener: the applier gives its outcome at once, for a release too', async () => {
      const { app, postbacks } = createApp({}, { listen: false });
      let captured: PostbackEvent | undefined;
      postbacks.on('action', (event) => {
        captured = event;
      });
      await request(app).get('/impact/actions?ActionId=2').expect(200);
      if (captured === undefined) throw new Error('no event');
      const emitter = new EventEmitter();
      emitter.on('action', () => {
        throw new Error('database down');
      });
      const reported: string[] = [];
      const apply = createClaimApplier<undefined>(
        emitter,
        { listenerTimeout: 1000, ordering: 'final-states', tokens: [] },
        (error) => void reported.push(error.code),
        new ClaimUnits(),
      );
      const claim = new MemoryStore().begin('k', null);
      if (typeof claim !== 'object') throw new Error('no claim');
      const outcome: DeliveryOutcome | Pending = apply(claim, 'action', captured);
      expect(outcome instanceof Pending).to.equal(false);
      expect({ kind: (outcome as DeliveryOutcome).kind, reported }).to.deep.equal({
        kind: 'failed',
        reported: ['listener.failed'],
      });
    });

    it('direct delivery begun after close() started: router.closed, the store never asked', async () => {
      const { app, postbacks } = createApp({}, { listen: false });
      let captured: PostbackEvent | undefined;
      postbacks.on('action', (event) => {
        captured = event;
      });
      await request(app).get('/impact/actions?ActionId=2').expect(200);
      if (captured === undefined) throw new Error('no event');
      const store = new FaultyStore(new MemoryStore());
      const emitter = new EventEmitter();
      emitter.on('action', () => undefined);
      const stopped = new AbortController();
      stopped.abort();
      const deliver = createDirectDelivery<undefined>(
        emitter,
        store,
        { listenerTimeout: 1000, ordering: 'final-states', tokens: [] },
        () => undefined,
        new ClaimUnits(),
        stopped.signal,
      );
      const outcome = await deliver('action', captured);
      expect({
        outcome:
          outcome.kind === 'failed' ? { code: outcome.error.code, message: outcome.error.message } : outcome.kind,
        begins: store.count('begin'),
      }).to.deep.equal({
        outcome: { code: 'router.closed', message: 'this receiver is shutting down; retry later' },
        begins: 0,
      });
    });

    it('a transactional claim whose listener runs when close() gives it up: 503 router.closed', async () => {
      const store = storeWith(new MemoryStore(), () => ({ transactional: true }));
      const { app, postbacks, events } = createApp({ store, listenerTimeout: 10_000 }, { listen: false });
      const gate = new Gate();
      postbacks.on('action', () => gate.wait());
      const answer = request(app)
        .get('/impact/actions?ActionId=1')
        .then((res) => res);
      await gate.reached(1);
      await postbacks.close({ timeoutMs: 20 });
      const res = await answer;
      gate.open();
      expect({ status: res.status, text: res.text, errors: events.error.map(described) }).to.deep.equal({
        status: 503,
        text: 'router.closed: this receiver shut down while the postback was handled; retry later',
        errors: [],
      });
    });

    it('listeners still running ten timeouts after they started are given up, with an error naming the bound', async () => {
      const { app, postbacks, events } = createApp({ listenerTimeout: 20 }, { listen: false });
      postbacks.on(
        'action',
        (_event, ctx) =>
          new Promise<void>((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              resolve();
            });
          }),
      );
      const res = await request(app).get('/impact/actions?ActionId=1');
      await until(() => events.error.length >= 2, 5000);
      await postbacks.close({ timeoutMs: 2000 });
      expect({ status: res.status, errors: events.error.map(described) }).to.deep.equal({
        status: 503,
        errors: [
          { code: 'listener.timeout', message: 'listeners took longer than 20 ms; retry later', cause: undefined },
          {
            code: 'listener.timeout',
            message: 'listeners still ran 200 ms after they started; given up',
            cause: undefined,
          },
        ],
      });
    });
  });

  describe('inbox delivery', () => {
    const dir = useTempDir('impact-rules-');

    it('a row whose listener fails on its last attempt is dead, with listener.failed caused by the failure', async () => {
      const store = new SqliteStore({ path: path.join(dir(), 'inbox.db') });
      const { app, postbacks } = createApp<unknown>({ store, delivery: 'inbox', maxAttempts: 1 }, { listen: false });
      const failure = new Error('database down');
      postbacks.on('action', () => {
        throw failure;
      });
      const dead: { code: string; message: string; cause: unknown }[] = [];
      postbacks.on('dead', (_event, error) => {
        dead.push({ code: error.code, message: error.message, cause: error.cause });
      });
      await request(app).get('/impact/actions?ActionId=1').expect(200);
      await until(() => dead.length > 0, 5000);
      await postbacks.close({ timeoutMs: 2000 });
      expect(dead).to.deep.equal([
        { code: 'listener.failed', message: 'the postback could not be handled; retry later', cause: failure },
      ]);
    });
  });

  describe('claim units', () => {
    const LEASE = 60_000;
    let units: ClaimUnits;
    beforeEach(() => {
      units = new ClaimUnits();
    });
    afterEach(async () => {
      await units.drain(0, 0);
    });

    /** A claim whose renewals are counted, and fail with `renewError` when it is set. */
    function fakeClaim(options: { renew?: boolean; renewError?: () => void | Promise<void> } = {}) {
      const claim = {
        renewals: 0,
        previous: null,
        transaction: undefined,
        transactional: false,
        leaseMs: LEASE,
        commit: (): void => undefined,
        release: (): void => undefined,
        ...(options.renew === false
          ? {}
          : {
              renew: (): void | Promise<void> => {
                claim.renewals += 1;
                return options.renewError?.();
              },
            }),
      };
      return claim;
    }

    /** Runs `act` with Date.now() fixed at `at`. */
    function at<R>(time: number, act: () => R): R {
      const now = Date.now;
      Date.now = () => time;
      try {
        return act();
      } finally {
        Date.now = now;
      }
    }

    /** Whether a promise has settled once every pending callback ran. */
    async function settled(promise: Promise<unknown>): Promise<boolean> {
      let done = false;
      void promise.then(
        () => {
          done = true;
        },
        () => {
          done = true;
        },
      );
      await new Promise((resolve) => setImmediate(resolve));
      return done;
    }

    it('renews a third of the lease after keepAlive, again a third of it after each renewal, and not before', () => {
      const claim = fakeClaim();
      const unit = new ClaimUnit(claim, units, () => undefined);
      const t = Date.now();
      const third = LEASE / 3;
      at(t, () => {
        unit.keepAlive();
      });
      const seen: number[] = [];
      for (const now of [t, t + third - 1, t + third, t + third, t + 2 * third - 1, t + 2 * third]) {
        unit.tick(now);
        seen.push(claim.renewals);
      }
      expect(seen).to.deep.equal([0, 0, 1, 1, 1, 2]);
    });

    it('keepAlive a second time does not move the next renewal', () => {
      const claim = fakeClaim();
      const unit = new ClaimUnit(claim, units, () => undefined);
      const t = Date.now();
      at(t, () => {
        unit.keepAlive();
      });
      unit.tick(t + LEASE);
      at(t, () => {
        unit.keepAlive();
      });
      unit.tick(t + LEASE);
      expect(claim.renewals).to.equal(1);
    });

    it('waits only for something to do: not when new, not for a claim without renew, yes after keepAlive, not once stopped', () => {
      const plain = new ClaimUnit(fakeClaim(), units, () => undefined);
      const noRenew = new ClaimUnit(fakeClaim({ renew: false }), units, () => undefined);
      noRenew.keepAlive();
      const kept = new ClaimUnit(fakeClaim(), units, () => undefined);
      kept.keepAlive();
      const keptWaiting = kept.isWaiting;
      const claim = fakeClaim();
      const stopped = new ClaimUnit(claim, units, () => undefined);
      stopped.keepAlive();
      stopped.stop();
      stopped.tick(Date.now() + LEASE);
      expect({
        plain: plain.isWaiting,
        noRenew: noRenew.isWaiting,
        kept: keptWaiting,
        stopped: stopped.isWaiting,
        stoppedRenewals: claim.renewals,
      }).to.deep.equal({ plain: false, noRenew: false, kept: true, stopped: false, stoppedRenewals: 0 });
    });

    it('a unit given up: keepAlive renews nothing, a wait ends at once as ABANDONED, and its signal says why', async () => {
      const claim = fakeClaim();
      const unit = new ClaimUnit(claim, units, () => undefined);
      const signal = unit.signal;
      unit.abandon();
      unit.keepAlive();
      unit.tick(Date.now() + LEASE);
      const waited = unit.wait(new Promise(() => undefined), LEASE, 'late');
      expect(await settled(waited)).to.equal(true);
      expect({
        renewals: claim.renewals,
        waited: await waited,
        waiting: unit.isWaiting,
        aborted: signal.aborted,
        reason: (signal.reason as Error).message,
      }).to.deep.equal({
        renewals: 0,
        waited: ABANDONED,
        waiting: false,
        aborted: true,
        reason: 'impact-postbacks gave this delivery up',
      });
    });

    it('a wait on the ticker ends when its time comes, not a moment before', async () => {
      const unit = new ClaimUnit(fakeClaim({ renew: false }), units, () => undefined);
      const t = Date.now();
      const waited = at(t, () => unit.wait(new Promise(() => undefined), 1000, 'late'));
      unit.tick(t + 999);
      const early = await settled(waited);
      unit.tick(t + 1000);
      expect({ early, late: await settled(waited), value: await waited, waiting: unit.isWaiting }).to.deep.equal({
        early: false,
        late: true,
        value: 'late',
        waiting: false,
      });
    });

    it('a wait with its own timer leaves the ticker out, and a wait that ended leaves nothing waiting', async () => {
      const unit = new ClaimUnit(fakeClaim({ renew: false }), units, () => undefined);
      const own = unit.wait(new Promise(() => undefined), 10, 'late', true);
      const ownWaiting = unit.isWaiting;
      const value = await own;
      const ticked = await unit.wait(Promise.resolve('done'), LEASE, 'late');
      expect({ ownWaiting, value, ticked, waiting: unit.isWaiting }).to.deep.equal({
        ownWaiting: false,
        value: 'late',
        ticked: 'done',
        waiting: false,
      });
    });

    it('a renewal that finds the claim lost is not reported, and the unit renews no more', () => {
      const reported: unknown[] = [];
      const claim = fakeClaim({
        renewError: () => {
          throw new ClaimLostError('the claim');
        },
      });
      const unit = new ClaimUnit(claim, units, (cause) => void reported.push(cause));
      const t = Date.now();
      at(t, () => {
        unit.keepAlive();
      });
      unit.tick(t + LEASE);
      unit.tick(t + 3 * LEASE);
      expect({ renewals: claim.renewals, reported, waiting: unit.isWaiting }).to.deep.equal({
        renewals: 1,
        reported: [],
        waiting: false,
      });
    });

    it('a renewal that rejects is reported with its cause, and renewals go on', async () => {
      const reported: unknown[] = [];
      const failure = new Error('connection lost');
      const claim = fakeClaim({ renewError: () => Promise.reject(failure) });
      const unit = new ClaimUnit(claim, units, (cause) => void reported.push(cause));
      const t = Date.now();
      at(t, () => {
        unit.keepAlive();
      });
      unit.tick(t + LEASE);
      await until(() => reported.length > 0, 2000);
      unit.tick(t + 3 * LEASE);
      expect({ renewals: claim.renewals, reported }).to.deep.equal({ renewals: 2, reported: [failure] });
    });

    it('the ticker stops once no unit has anything to wait for', async () => {
      const timers = watchPackageTimers();
      try {
        const unit = new ClaimUnit(fakeClaim({ renew: false }), units, () => undefined);
        await unit.wait(new Promise((resolve) => setImmediate(resolve)), 30, 'late');
        await until(() => timers.alive().length === 0, 2000);
        expect(timers.alive()).to.deep.equal([]);
      } finally {
        timers.stop();
      }
    });

    it('the ticker stops once the last working unit ended', async () => {
      const timers = watchPackageTimers();
      try {
        const unit = new ClaimUnit(fakeClaim(), units, () => undefined);
        unit.keepAlive();
        let end = (): void => undefined;
        units.add(
          unit,
          new Promise<void>((resolve) => {
            end = resolve;
          }),
        );
        const whileWorking = timers.alive().length;
        end();
        // At once, not at the ticker's next tick a second later (the bound leaves room for a loaded machine).
        await until(() => timers.alive().length === 0, 700);
        expect({ whileWorking, after: timers.alive() }).to.deep.equal({ whileWorking: 1, after: [] });
      } finally {
        timers.stop();
      }
    });

    it('a short wait shortens the ticker another unit started long', async () => {
      const kept = new ClaimUnit(fakeClaim(), units, () => undefined);
      kept.keepAlive();
      const unit = new ClaimUnit(fakeClaim({ renew: false }), units, () => undefined);
      const started = Date.now();
      const value = await unit.wait(new Promise(() => undefined), 20, 'late');
      // The wait itself is the behaviour: a ticker left at its 1 s period ends it a second late.
      expect({ value, inTime: Date.now() - started < 800 }).to.deep.equal({ value: 'late', inTime: true });
    });
  });

  describe('the inbox worker', () => {
    let event: PostbackEvent;
    before(async () => {
      const { app, postbacks } = createApp({}, { listen: false });
      postbacks.on('action', (received) => {
        event = received;
      });
      await request(app).get('/impact/actions?ActionId=3').expect(200);
    });

    interface Recorded {
      next: number;
      waits: number;
      nextAtWait: number[];
      releases: string[];
      giveBacks: number;
      failures: [string, number | null][];
    }

    function row(id: number, attempts: number): InboxRow {
      return {
        id,
        attempts,
        status: 'pending',
        lastError: null,
        nextAttemptAt: new Date(0),
        deliveredAt: null,
        outcome: null,
      } as unknown as InboxRow;
    }

    function claimOf(seen: Recorded, inboxRow: InboxRow, extra: Partial<InboxClaim<undefined>> = {}) {
      return Object.assign(
        {
          row: inboxRow,
          previous: null,
          transaction: undefined,
          transactional: false,
          commit: (): void => undefined,
          release: (reason: string): void => void seen.releases.push(reason),
          recordFailure: (error: string, retryAfterMs: number | null): Promise<boolean> => {
            seen.failures.push([error, retryAfterMs]);
            return Promise.resolve(true);
          },
          giveBack: (): Promise<void> => {
            seen.giveBacks += 1;
            return Promise.resolve();
          },
        },
        extra,
      ) as InboxClaim<undefined>;
    }

    /** A worker over an inbox that gives `claims` in turn, its waits for work never ending by themselves. */
    function worker(
      claims: (seen: Recorded) => InboxClaim<undefined>[],
      options: {
        settings?: Partial<InboxSettings>;
        inbox?: Partial<StoreInbox<undefined>>;
        rebuild?: (inboxRow: InboxRow) => PostbackEvent;
      } = {},
    ) {
      const seen: Recorded = { next: 0, waits: 0, nextAtWait: [], releases: [], giveBacks: 0, failures: [] };
      const queue = claims(seen);
      const emitter = new EventEmitter();
      const errors: PostbackError[] = [];
      const dead: unknown[][] = [];
      const units = new ClaimUnits();
      const inbox = {
        add: () => 'stored' as const,
        next: () => {
          seen.next += 1;
          return Promise.resolve(queue.shift() ?? null);
        },
        waitForWork: () => {
          seen.waits += 1;
          seen.nextAtWait.push(seen.next);
          return new Promise<void>(() => undefined);
        },
        stats: () => Promise.reject(new Error('unused')),
        list: () => Promise.resolve([]),
        retry: () => Promise.resolve(0),
        ...options.inbox,
      } satisfies StoreInbox<undefined>;
      const delivery = createInboxDelivery<undefined>(
        emitter,
        inbox,
        {
          listenerTimeout: 10_000,
          ordering: 'final-states',
          tokens: [],
          maxAttempts: 100,
          backoff: { baseMs: 100, maxMs: 1000 },
          concurrency: 4,
          ...options.settings,
        },
        (error) => void errors.push(error),
        units,
        (_name, args) => void dead.push([...args]),
        options.rebuild ?? (() => event),
        () => 'action',
        null,
      );
      return { seen, emitter, errors, dead, units, delivery };
    }

    it('waits baseMs × 2^(n−1), at most maxMs, less a random part of up to half, before attempt n + 1', async () => {
      const random = Math.random;
      Math.random = () => 0.5;
      try {
        const w = worker((seen) => [0, 1, 2, 4, 60].map((attempts, i) => claimOf(seen, row(i + 1, attempts))));
        w.emitter.on('action', () => {
          throw new Error('down');
        });
        await until(() => w.seen.failures.length === 5, 2000);
        await w.delivery.stop(1000);
        expect(w.seen.failures.map(([, delay]) => delay)).to.deep.equal([75, 150, 300, 750, 750]);
      } finally {
        Math.random = random;
      }
    });

    it('a row whose delivery the router gave up on closing is given back, not counted as an attempt', async () => {
      const w = worker((seen) => [claimOf(seen, row(1, 0))]);
      const gate = new Gate();
      w.emitter.on(
        'action',
        later(() => gate.wait()),
      );
      await gate.reached(1);
      await w.units.drain(0, 1000);
      await w.delivery.stop(1000);
      gate.open();
      expect({ giveBacks: w.seen.giveBacks, failures: w.seen.failures, releases: w.seen.releases }).to.deep.equal({
        giveBacks: 1,
        failures: [],
        releases: ['timeout'],
      });
    });

    it('a row that no longer builds an event: internal error caused by it, released, recorded, and dead', async () => {
      const broken = new Error('bad payload');
      const w = worker((seen) => [claimOf(seen, row(7, 0))], {
        settings: { maxAttempts: 1 },
        rebuild: () => {
          throw broken;
        },
      });
      await until(() => w.seen.failures.length === 1, 2000);
      await w.delivery.stop(1000);
      expect({
        errors: reports(w.errors),
        releases: w.seen.releases,
        failures: w.seen.failures,
        dead: w.dead.map(([deadEvent, error]) => [deadEvent, (error as PostbackError).code]),
      }).to.deep.equal({
        errors: [{ code: 'internal', message: 'inbox row 7 could not be delivered', cause: broken }],
        releases: ['failed'],
        failures: [['inbox row 7 could not be delivered', null]],
        dead: [[null, 'internal']],
      });
    });

    it('a row whose event was built but whose delivery threw is not released by the worker', async () => {
      const broken = new Error('previous unreadable');
      const w = worker((seen) => [
        Object.defineProperty(claimOf(seen, row(7, 0)), 'previous', {
          get: () => {
            throw broken;
          },
        }),
      ]);
      w.emitter.on('action', () => undefined);
      await until(() => w.seen.failures.length === 1, 2000);
      await w.delivery.stop(1000);
      expect({ errors: w.errors.map((error) => error.code), releases: w.seen.releases }).to.deep.equal({
        errors: ['internal'],
        releases: [],
      });
    });

    it('a failure the inbox cannot record is reported with its cause', async () => {
      const cause = new Error('disk full');
      const w = worker((seen) => [claimOf(seen, row(7, 0), { recordFailure: () => Promise.reject(cause) })]);
      w.emitter.on('action', () => {
        throw new Error('down');
      });
      await until(() => w.errors.length === 2, 2000);
      await w.delivery.stop(1000);
      expect(reports(w.errors).at(1)).to.deep.equal({
        code: 'store.failed',
        message: 'the inbox failed to record a failed delivery of row 7',
        cause,
      });
    });

    const unreadable = [
      { what: 'be read', op: 'next', message: 'the inbox could not be read; trying again' },
      { what: 'wait for new rows', op: 'waitForWork', message: 'the inbox could not wait for new rows; looking again' },
    ] as const;
    for (const { what, op, message } of unreadable) {
      it(`an inbox that cannot ${what} is reported with its cause`, async () => {
        const cause = new Error('connection refused');
        const w = worker(() => [], { inbox: { [op]: () => Promise.reject(cause) } });
        await until(() => w.errors.length === 1, 2000);
        await w.delivery.stop(1000);
        expect(reports(w.errors)).to.deep.equal([{ code: 'store.failed', message, cause }]);
      });
    }

    it('takes no more rows than its concurrency at once', async () => {
      const w = worker((seen) => [claimOf(seen, row(1, 0)), claimOf(seen, row(2, 0))], {
        settings: { concurrency: 1 },
      });
      const gate = new Gate();
      w.emitter.on(
        'action',
        later(() => gate.wait()),
      );
      await until(() => w.seen.waits === 1, 2000);
      const nextAtWait = [...w.seen.nextAtWait];
      gate.open();
      await until(() => w.seen.next >= 3, 2000);
      await w.delivery.stop(1000);
      expect(nextAtWait).to.deep.equal([1]);
    });

    /** A read of the inbox that the test answers: its resolver is pushed to `asked`. */
    function answeredLater(asked: ((claim: InboxClaim<undefined> | null) => void)[]) {
      return new Promise<InboxClaim<undefined> | null>((resolve) => {
        asked.push(resolve);
      });
    }

    it('stopped while it reads the inbox, it ends without waiting for work', async () => {
      const asked: ((claim: InboxClaim<undefined> | null) => void)[] = [];
      const w = worker(() => [], { inbox: { next: () => answeredLater(asked) } });
      await until(() => asked.length === 1, 2000);
      const stopping = w.delivery.stop(1000);
      asked[0]?.(null);
      await stopping;
      expect({ asked: asked.length, waits: w.seen.waits }).to.deep.equal({ asked: 1, waits: 0 });
    });

    /** A row whose attempts all began: `attempts` of them, the last error recorded `lastError`. */
    function usedUp(id: number, attempts: number, lastError: string | null): InboxRow {
      return { ...row(id, attempts), lastError };
    }

    it('a row whose attempts all began is made dead without running its listeners, its last error kept in the message', async () => {
      const w = worker(
        (seen) => [
          claimOf(seen, usedUp(7, 3, 'listener failed: down')),
          claimOf(seen, usedUp(8, 4, null)),
          // One attempt left: delivered.
          claimOf(seen, usedUp(9, 2, 'listener failed: down')),
        ],
        { settings: { maxAttempts: 3 } },
      );
      const heard: number[] = [];
      w.emitter.on('action', () => void heard.push(1));
      await until(() => w.seen.failures.length === 2 && heard.length === 1, 2000);
      await w.delivery.stop(1000);
      const seven = 'inbox row 7 has begun 3 attempts (maxAttempts: 3); the last error recorded: listener failed: down';
      const eight =
        'inbox row 8 has begun 4 attempts (maxAttempts: 3); the last error recorded: none (an attempt was cut ' +
        'short, as when the process dies during it)';
      expect({
        heard: heard.length,
        failures: w.seen.failures,
        errors: w.errors.map((error) => [error.code, error.message]),
        dead: w.dead.map(([deadEvent, error]) => [deadEvent === event, (error as PostbackError).message]),
      }).to.deep.equal({
        heard: 1,
        failures: [
          [seven, null],
          [eight, null],
        ],
        errors: [
          ['listener.failed', seven],
          ['listener.failed', eight],
        ],
        dead: [
          [true, seven],
          [true, eight],
        ],
      });
    });

    it('a row made dead without delivery: announced once recorded, with no event if it builds none; not if another worker had it', async () => {
      const broken = new Error('bad payload');
      const unbuildable = worker((seen) => [claimOf(seen, usedUp(7, 1, null))], {
        settings: { maxAttempts: 1 },
        rebuild: () => {
          throw broken;
        },
      });
      const taken = worker(
        (seen) => [claimOf(seen, usedUp(8, 1, null), { recordFailure: () => Promise.resolve(false) })],
        { settings: { maxAttempts: 1 } },
      );
      await until(() => unbuildable.dead.length === 1 && taken.errors.length === 1, 2000);
      await unbuildable.delivery.stop(1000);
      await taken.delivery.stop(1000);
      expect({
        unbuildable: unbuildable.dead.map(([deadEvent, error]) => [deadEvent, (error as PostbackError).code]),
        taken: taken.dead.length,
      }).to.deep.equal({ unbuildable: [[null, 'listener.failed']], taken: 0 });
    });

    it('a row that cannot be made dead is reported with its cause, and not announced', async () => {
      const cause = new Error('disk full');
      const w = worker((seen) => [claimOf(seen, usedUp(7, 1, null), { recordFailure: () => Promise.reject(cause) })], {
        settings: { maxAttempts: 1 },
      });
      await until(() => w.errors.length === 2, 2000);
      await w.delivery.stop(1000);
      expect({ error: reports(w.errors).at(1), dead: w.dead.length }).to.deep.equal({
        error: { code: 'store.failed', message: 'the inbox failed to record that row 7 is dead', cause },
        dead: 0,
      });
    });

    it('an attempt the store cannot count is not delivered: the row is given back, or released by a store that cannot give back', async () => {
      const cause = new Error('connection refused');
      const start = (): Promise<void> => Promise.reject(cause);
      const givesBack = worker((seen) => [claimOf(seen, row(7, 0), { start })]);
      const releases = worker((seen) => {
        // A custom store's claim that has no giveBack.
        const claim: { giveBack?: unknown } = claimOf(seen, row(7, 0), { start });
        delete claim.giveBack;
        return [claim as InboxClaim<undefined>];
      });
      let heard = 0;
      for (const w of [givesBack, releases]) w.emitter.on('action', () => void (heard += 1));
      await until(() => givesBack.seen.giveBacks === 1 && releases.seen.releases.length === 1, 2000);
      await givesBack.delivery.stop(1000);
      await releases.delivery.stop(1000);
      const message = 'the inbox could not count an attempt of row 7; trying again';
      expect({
        heard,
        givesBack: [givesBack.seen.giveBacks, givesBack.seen.releases, reports(givesBack.errors)],
        releases: [releases.seen.releases, reports(releases.errors)],
      }).to.deep.equal({
        heard: 0,
        givesBack: [1, [], [{ code: 'store.failed', message, cause }]],
        releases: [['failed'], [{ code: 'store.failed', message, cause }]],
      });
    });

    it('a row taken as stop() begins is given back, not delivered, and a read that fails then is not reported', async () => {
      const asked: ((claim: InboxClaim<undefined> | null) => void)[] = [];
      const w = worker(() => [], { inbox: { next: () => answeredLater(asked) } });
      const failing = worker(() => [], {
        inbox: { next: () => new Promise((_, reject) => asked.push(() => reject(new Error('closed')))) },
      });
      let heard = 0;
      w.emitter.on('action', () => void (heard += 1));
      await until(() => asked.length === 2, 2000);
      const stopping = [w.delivery.stop(1000), failing.delivery.stop(1000)];
      asked[0]?.(claimOf(w.seen, row(7, 0)));
      asked[1]?.(null);
      await Promise.all(stopping);
      expect({ heard, giveBacks: w.seen.giveBacks, reported: failing.errors.length }).to.deep.equal({
        heard: 0,
        giveBacks: 1,
        reported: 0,
      });
    });

    it('an attempt counted as stop() begins is given back, its listeners not run', async () => {
      const counted = new Gate();
      const w = worker((seen) => [claimOf(seen, row(7, 0), { start: () => counted.wait() })]);
      let heard = 0;
      w.emitter.on('action', () => void (heard += 1));
      await counted.reached(1);
      const stopping = w.delivery.stop(1000);
      counted.open();
      await stopping;
      expect({ heard, giveBacks: w.seen.giveBacks, failures: w.seen.failures }).to.deep.equal({
        heard: 0,
        giveBacks: 1,
        failures: [],
      });
    });

    it('a copy of a stored postback is answered as a duplicate', async () => {
      const w = worker(() => [], { inbox: { add: () => 'duplicate' as const } });
      const outcome = await w.delivery.arrive(event);
      await w.delivery.stop(1000);
      expect(outcome).to.deep.equal({ kind: 'duplicate' });
    });

    it('looks for rows again at once after a retry that made some pending, not after one that made none', async () => {
      let count = 0;
      const w = worker(() => [], { inbox: { retry: () => Promise.resolve(count) } });
      await until(() => w.seen.waits === 1, 2000);
      const afterNone = await w.delivery.admin.retry({ status: 'dead' });
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      const nextAfterNone = w.seen.next;
      count = 2;
      const afterSome = await w.delivery.admin.retry({ status: 'dead' });
      await until(() => w.seen.next === 2, 2000);
      await w.delivery.stop(1000);
      expect({ afterNone, nextAfterNone, afterSome, next: w.seen.next }).to.deep.equal({
        afterNone: 0,
        nextAfterNone: 1,
        afterSome: 2,
        next: 2,
      });
    });

    it('ordering none: a row a later postback superseded is still emitted as its event, not as stale', async () => {
      const w = worker((seen) => [claimOf(seen, row(1, 0), { superseded: true })], {
        settings: { ordering: 'none' },
      });
      const heard: string[] = [];
      w.emitter.on('action', () => void heard.push('action'));
      w.emitter.on('stale', () => void heard.push('stale'));
      await until(() => heard.length === 1, 2000);
      await w.delivery.stop(1000);
      expect(heard).to.deep.equal(['action']);
    });

    it('a postback the inbox fails to store: 503 store.failed with its cause; one it does not store in time: the cause names the timeout', async () => {
      const cause = new Error('disk full');
      const thrown = worker(() => [], {
        inbox: {
          add: () => {
            throw cause;
          },
        },
      });
      const hung = worker(() => [], {
        inbox: { add: () => new Promise(() => undefined) },
        settings: { listenerTimeout: 20 },
      });
      const first = await thrown.delivery.arrive(event);
      const second = await hung.delivery.arrive(event);
      await thrown.delivery.stop(1000);
      await hung.delivery.stop(1000);
      const plain = (outcome: DeliveryOutcome): unknown =>
        outcome.kind === 'failed'
          ? {
              kind: outcome.kind,
              code: outcome.error.code,
              message: outcome.error.message,
              cause: (outcome.error.cause as Error).message,
            }
          : outcome;
      expect([plain(first), plain(second)]).to.deep.equal([
        {
          kind: 'failed',
          code: 'store.failed',
          message: 'the postback could not be stored; retry later',
          cause: 'disk full',
        },
        {
          kind: 'failed',
          code: 'store.failed',
          message: 'the postback could not be stored; retry later',
          cause: 'the inbox did not answer within 20 ms',
        },
      ]);
    });
  });
});
