import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { until } from './harness/until';
import request from 'supertest';
import { MemoryStore, type BeginResult, type PostbackStore, type StoreClaim } from '../lib';
import { createApp, errorCode } from './helpers/create-app';
import { TRACKED_ACTION } from './helpers/fixtures';
import { send } from './helpers/send';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe('acknowledgement and delivery', () => {
  it('answers 2xx only after an async listener has finished', async () => {
    const { app, postbacks } = createApp({}, { listen: false });
    const gate = deferred();
    let finished = false;
    postbacks.on('action', async () => {
      await gate.promise;
      finished = true;
    });
    let answered = false;
    const response = request(app)
      .get('/impact/actions?ActionId=1')
      .then((res) => {
        answered = true;
        return res;
      });
    await sleep(50);
    expect(answered).to.equal(false);
    gate.resolve();
    const res = await response;
    expect(res.status).to.equal(200);
    expect(finished).to.equal(true);
  });

  describe('when a listener fails', () => {
    for (const how of ['throws', 'rejects'] as const) {
      it(`answers 500 when it ${how}, emits error, and handles impact.com's retry`, async () => {
        const { app, postbacks, events } = createApp({}, { listen: false });
        let calls = 0;
        postbacks.on(
          'action',
          how === 'throws'
            ? () => {
                calls += 1;
                if (calls === 1) throw new Error('database down');
              }
            : async () => {
                calls += 1;
                if (calls === 1) throw new Error('database down');
              },
        );
        const res = await request(app).get('/impact/actions?ActionId=1').expect(500);
        expect(res.text).to.equal('listener.failed: the postback could not be handled; retry later');
        expect(events.error.map((error) => error.code)).to.include('listener.failed');
        expect((events.error[0]?.cause as Error).message).to.equal('database down');
        expect(events.error[0]?.message).to.equal('a "action" listener failed: database down');
        await request(app).get('/impact/actions?ActionId=1').expect(200);
        expect(calls).to.equal(2);
        expect(events.duplicate).to.deep.equal([]);
      });
    }

    it("says in the error event's message what the listener's error said: its first line, bounded, never the token, whatever was thrown", async () => {
      const token = 's3cret-token-value';
      // One token begins the other: the longer one must not be left half there.
      const { app, postbacks, events } = createApp({ token: ['s3cret', token] }, { listen: false });
      const unprintable = {
        toString: () => {
          throw new Error('no');
        },
      };
      const noMessage = Object.assign(new Error('x'), { message: undefined });
      const thrown: unknown[] = [
        new Error(`no user for ${token} (${encodeURIComponent(`a b${token}`)}) and more\nat the second line`),
        new Error('x'.repeat(400)),
        new Error(''),
        'a string thrown, not an Error',
        Object.create(null),
        unprintable,
        noMessage,
        null,
      ];
      let call = 0;
      postbacks.on('action', () => {
        const failure = thrown[call];
        call += 1;
        throw failure;
      });
      for (let index = 0; index < thrown.length; index += 1) {
        await request(app).get(`/impact/actions?ActionId=${index}&token=${token}`).expect(500);
      }
      expect(events.error.map((error) => error.message)).to.deep.equal([
        'a "action" listener failed: no user for [token] (a%20b[token]) and more',
        `a "action" listener failed: ${'x'.repeat(300)}…`,
        'a "action" listener failed: (no message)',
        'a "action" listener failed: a string thrown, not an Error',
        'a "action" listener failed: (unprintable)',
        'a "action" listener failed: (unprintable)',
        'a "action" listener failed: (no message)',
        'a "action" listener failed: null',
      ]);
      // Each claim was let go: the postbacks go through once the listener stops failing.
      postbacks.removeAllListeners('action');
      postbacks.on('action', () => undefined);
      for (let index = 0; index < thrown.length; index += 1) {
        await request(app).get(`/impact/actions?ActionId=${index}&token=${token}`).expect(200);
      }
    });

    it('reports a notification listener that throws something unprintable, and nothing escapes', async () => {
      const { app, postbacks, events } = createApp({ token: 'right-token' }, { listen: false });
      postbacks.on('rejected', () => {
        throw Object.create(null);
      });
      await request(app).get('/impact/actions?ActionId=1&token=wrong').expect(403);
      await until(() => events.error.length === 1);
      expect(events.error.map((error) => error.message)).to.deep.equal(['a "rejected" listener failed: (unprintable)']);
    });

    it('still runs the other listeners', async () => {
      const { app, postbacks } = createApp({}, { listen: false });
      const ran: string[] = [];
      postbacks.on('action', () => {
        ran.push('first');
        throw new Error('boom');
      });
      postbacks.on('action', () => void ran.push('second'));
      await request(app).get('/impact/actions?ActionId=1').expect(500);
      expect(ran).to.deep.equal(['first', 'second']);
    });

    it('does not crash the process when the host registered no error listener', async () => {
      const { app, postbacks } = createApp({}, { listen: false });
      postbacks.removeAllListeners('error');
      postbacks.on('action', async () => Promise.reject(new Error('boom')));
      await request(app).get('/impact/actions?ActionId=1').expect(500);
      postbacks.removeAllListeners('action');
      postbacks.on('action', () => {
        throw new Error('sync boom');
      });
      await request(app).get('/impact/actions?ActionId=2').expect(500);
    });
  });

  describe('when listeners run past listenerTimeout', () => {
    it('answers 503 with Retry-After, and a retry after they finish is a duplicate', async () => {
      const { app, postbacks, events } = createApp({ listenerTimeout: 50 }, { listen: false });
      const gate = deferred();
      let calls = 0;
      postbacks.on('action', async () => {
        calls += 1;
        await gate.promise;
      });
      const res = await request(app).get('/impact/actions?ActionId=1').expect(503);
      expect(errorCode(res.text)).to.equal('listener.timeout');
      expect(res.headers['retry-after']).to.equal('10');
      expect(events.error.map((error) => error.code)).to.deep.equal(['listener.timeout']);
      // A retry while the first run still works is not handled a second time.
      const during = await request(app).get('/impact/actions?ActionId=1').expect(503);
      expect(errorCode(during.text)).to.equal('postback.in_flight');
      gate.resolve();
      await sleep(10);
      await request(app).get('/impact/actions?ActionId=1').expect(200);
      expect(calls).to.equal(1);
      expect(events.duplicate).to.have.length(1);
    });
  });

  describe('duplicates', () => {
    it('answers a repeat with success, emits duplicate, and no second action', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200, 'OK');
      await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200, 'OK');
      expect(events.action).to.have.length(1);
      expect(events.duplicate).to.have.length(1);
      expect(events.duplicate[0]?.meta.key).to.equal(events.action[0]?.meta.key);
    });

    it('recognises the same postback in another format as a repeat', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200);
      await send(app, '/impact/actions', 'xml', TRACKED_ACTION).expect(200);
      await send(app, '/impact/actions', 'json', { ...TRACKED_ACTION, Status: 'PENDING', Currency: 'USD' }).expect(200);
      expect(events.action).to.have.length(1);
      expect(events.duplicate).to.have.length(2);
    });

    it('handles a modification and a reversal of one action as new postbacks', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200);
      await send(app, '/impact/actions', 'query', { ...TRACKED_ACTION, Payout: '20.00', DeltaPayout: '-7.75' }).expect(
        200,
      );
      await send(app, '/impact/actions', 'query', {
        ...TRACKED_ACTION,
        Status: 'REVERSED',
        Payout: '0.00',
        DeltaPayout: '-20.00',
      }).expect(200);
      expect(events.action.map((event) => [event.status, event.payout])).to.deep.equal([
        ['PENDING', '27.75'],
        ['PENDING', '20.00'],
        ['REVERSED', '0.00'],
      ]);
      expect(events.duplicate).to.deep.equal([]);
    });

    it('keeps the same fields on another route apart', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200);
      await send(app, '/impact/clearing', 'query', TRACKED_ACTION).expect(200);
      expect(events.action.map((event) => event.trigger)).to.deep.equal(['lifecycle', 'clearing']);
    });

    it('emits once for 30 concurrent copies, all answered 2xx', async () => {
      const { app, postbacks, events } = createApp({}, { listen: false });
      let calls = 0;
      postbacks.on('action', async () => {
        calls += 1;
        await sleep(30);
      });
      const responses = await Promise.all(
        Array.from({ length: 30 }, () => send(app, '/impact/actions', 'json', TRACKED_ACTION)),
      );
      expect(responses.map((res) => res.status)).to.deep.equal(Array.from({ length: 30 }, () => 200));
      expect(calls).to.equal(1);
      expect(events.duplicate).to.have.length(29);
    });

    it('lets a waiting copy take over when the first attempt fails', async () => {
      const { app, postbacks } = createApp({}, { listen: false });
      let calls = 0;
      postbacks.on('action', async () => {
        calls += 1;
        await sleep(20);
        if (calls === 1) throw new Error('first attempt fails');
      });
      const statuses = (await Promise.all([1, 2].map(() => request(app).get('/impact/actions?ActionId=1')))).map(
        (res) => res.status,
      );
      expect(statuses.sort()).to.deep.equal([200, 500]);
      expect(calls).to.equal(2);
    });
  });

  describe('with no listener for the event', () => {
    it('answers 503 and does not remember the postback as handled', async () => {
      const { app, postbacks, events } = createApp({}, { listen: false });
      const res = await request(app).get('/impact/actions?ActionId=1').expect(503);
      expect(errorCode(res.text)).to.equal('listener.missing');
      const received: string[] = [];
      postbacks.on('action', (event) => void received.push(event.actionId));
      await request(app).get('/impact/actions?ActionId=1').expect(200);
      expect(received).to.deep.equal(['1']);
      expect(events.error.map((error) => error.code)).to.deep.equal(['listener.missing']);
    });
  });

  it('calls a once listener once', async () => {
    const { app, postbacks } = createApp({}, { listen: false });
    const received: string[] = [];
    postbacks.once('action', (event) => void received.push(event.actionId));
    await request(app).get('/impact/actions?ActionId=1').expect(200);
    await request(app).get('/impact/actions?ActionId=2').expect(503);
    expect(received).to.deep.equal(['1']);
    expect(postbacks.listenerCount('action')).to.equal(0);
  });

  describe('with a store that fails', () => {
    class FailingStore implements PostbackStore {
      constructor(
        private readonly failing: 'begin' | 'commit',
        /** Commits that fail before they work again. */
        private commitFailures = Infinity,
      ) {}
      readonly memory = new MemoryStore();
      begin(key: string, subject: string | null): Promise<BeginResult<undefined>> {
        if (this.failing === 'begin') return Promise.reject(new Error('store down'));
        const claim = this.memory.begin(key, subject);
        if (typeof claim === 'string') return Promise.resolve(claim);
        const failingCommit: StoreClaim<undefined> = {
          previous: claim.previous,
          transaction: undefined,
          transactional: false,
          commit: (record, outcome) => {
            if (this.commitFailures <= 0) return claim.commit(record, outcome);
            this.commitFailures -= 1;
            throw new Error('store down');
          },
          release: () => claim.release('failed'),
        };
        return Promise.resolve(failingCommit);
      }
    }

    it('answers 503 and emits nothing when claiming fails', async () => {
      const { app, events } = createApp({ store: new FailingStore('begin') });
      const res = await request(app).get('/impact/actions?ActionId=1').expect(503);
      expect(errorCode(res.text)).to.equal('store.failed');
      expect(events.action).to.deep.equal([]);
      expect(events.error.map((error) => error.code)).to.deep.equal(['store.failed']);
    });

    it('answers 503 when recording a handled postback fails, holds it while the record is tried again, and answers its retry as a duplicate once recorded', async () => {
      const { app, events, postbacks } = createApp({ store: new FailingStore('commit', 3), listenerTimeout: 200 });
      const first = await request(app).get('/impact/actions?ActionId=1').expect(503);
      expect(errorCode(first.text)).to.equal('store.failed');
      // While the record is tried again, the postback stays held: its retry is not delivered.
      const meanwhile = await request(app).get('/impact/actions?ActionId=1').expect(503);
      expect(errorCode(meanwhile.text)).to.equal('postback.in_flight');
      await sleep(1000);
      await request(app).get('/impact/actions?ActionId=1').expect(200).expect('X-Postback-Outcome', 'duplicate');
      expect(events.action).to.have.length(1);
      expect(events.error.map((error) => error.code)).to.deep.equal(['store.failed', 'store.failed', 'store.failed']);
      await postbacks.close();
    });

    it('answers 503 postback.in_flight when another process holds the key', async () => {
      const busy: PostbackStore = { begin: () => 'in-flight' };
      const { app, events } = createApp({ store: busy });
      const res = await request(app).get('/impact/actions?ActionId=1').expect(503);
      expect(errorCode(res.text)).to.equal('postback.in_flight');
      expect(events.action).to.deep.equal([]);
    });
  });
});

describe('MemoryStore', () => {
  /** Claims and commits a key, as the router does for a postback handled. */
  function handle(store: MemoryStore, key: string): void {
    const claim = store.begin(key, null);
    if (typeof claim === 'string') throw new Error(`${key} was not claimed: ${claim}`);
    void claim.commit(null, 'delivered');
  }

  it('answers a claim, in-flight and handled', () => {
    const store = new MemoryStore();
    const first = store.begin('a', null);
    expect(first).to.be.an('object');
    expect(store.begin('a', null)).to.equal('in-flight');
    void (first as StoreClaim<undefined>).commit(null, 'delivered');
    expect(store.begin('a', null)).to.equal('handled');
    const other = store.begin('b', null) as StoreClaim<undefined>;
    void other.release('failed');
    expect(store.begin('b', null)).to.be.an('object');
  });

  it('keeps at most maxKeys, forgetting the oldest first', () => {
    const store = new MemoryStore({ maxKeys: 3 });
    for (const key of ['a', 'b', 'c', 'd']) handle(store, key);
    expect(store.size).to.equal(3);
    expect(store.begin('a', null)).to.be.an('object');
    expect(store.begin('d', null)).to.equal('handled');
  });

  it('forgets handled keys after maxAgeMs and lets a stale claim go after leaseMs', async () => {
    const store = new MemoryStore({ maxAgeMs: 20, leaseMs: 20 });
    handle(store, 'handled');
    store.begin('abandoned', null);
    await sleep(30);
    expect(store.begin('handled', null)).to.be.an('object');
    expect(store.begin('abandoned', null)).to.be.an('object');
  });

  it('keeps journal records like its keys: at most maxKeys, the oldest written first to go', () => {
    const store = new MemoryStore({ maxKeys: 10 });
    for (let index = 0; index < 40; index += 1) {
      const claim = store.begin(`k${index}`, `action:${index}`) as StoreClaim<undefined>;
      void claim.commit({ status: 'PENDING', payout: String(index) }, 'delivered');
    }
    const previous = (subject: string) => (store.begin(`probe:${subject}`, subject) as StoreClaim<undefined>).previous;
    // The bound is kept within a tenth over maxKeys: the newest ten always stay.
    for (let index = 30; index < 40; index += 1)
      expect(previous(`action:${index}`)).to.deep.equal({ status: 'PENDING', payout: String(index) });
    expect(previous('action:0')).to.equal(null);
  });
});
