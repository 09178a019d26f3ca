import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import request from 'supertest';
import { MemoryStore, type BeginResult, type PostbackStore } from '../../lib';
import { createApp, errorCode, staleActions } from '../helpers/create-app';
import { TRACKED_ACTION } from '../helpers/fixtures';
import { send } from '../helpers/send';
import { startServer } from '../helpers/server';
import { expectNoEmit } from './helpers';

const MODIFIED = { ...TRACKED_ACTION, Payout: '20.00', DeltaPayout: '-7.75', Amount: '800.00', DeltaAmount: '-200.00' };
const REVERSED = {
  ...TRACKED_ACTION,
  Status: 'REVERSED',
  Payout: '0.00',
  DeltaPayout: '-20.00',
  Amount: '0.00',
  DeltaAmount: '-800.00',
};

describe('hostile F: idempotency, ordering, failure and crash', () => {
  it('F43: the same postback twice in a row is credited once', async () => {
    const { app, events } = createApp();
    await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200);
    await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200);
    expect(events.action).to.have.length(1);
  });

  it('F44: the same postback 50 times concurrently over 50 connections is credited once, all 2xx', async () => {
    const { app, postbacks, events } = createApp({}, { listen: false });
    const credits: string[] = [];
    postbacks.on('action', async (event) => {
      await sleep(20);
      credits.push(event.actionId);
    });
    const server = await startServer(app);
    try {
      const statuses = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const res = await fetch(`${server.base}/impact/actions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', connection: 'close' },
            body: JSON.stringify(TRACKED_ACTION),
          });
          await res.text();
          return res.status;
        }),
      );
      expect(new Set(statuses)).to.deep.equal(new Set([200]));
      expect(credits).to.deep.equal([TRACKED_ACTION['ActionId']]);
      expect(events.duplicate).to.have.length(49);
    } finally {
      await server.close();
    }
  });

  it('F45: tracked, modified, reversed are each emitted once, in order, and repeats are absorbed', async () => {
    const { app, events } = createApp();
    for (const fields of [TRACKED_ACTION, MODIFIED, MODIFIED, REVERSED, TRACKED_ACTION, REVERSED]) {
      await send(app, '/impact/actions', 'query', fields).expect(200);
    }
    expect(events.action.map((event) => [event.status, event.payout, event.deltaPayout])).to.deep.equal([
      ['PENDING', '27.75', '0.00'],
      ['PENDING', '20.00', '-7.75'],
      ['REVERSED', '0.00', '-20.00'],
    ]);
    // The reversal's delta undoes exactly what was credited: 27.75 - 7.75 - 20.00 = 0.
    const cents = events.action.map((event, index) =>
      Math.round(Number(index === 0 ? event.payout : event.deltaPayout) * 100),
    );
    expect(cents.reduce((sum, value) => sum + value, 0)).to.equal(0);
    expect(events.duplicate).to.have.length(3);
  });

  it('F46: a reversal that overtakes the tracked action is emitted, and the late original comes as stale, crediting nothing', async () => {
    const { app, events } = createApp();
    await send(app, '/impact/actions', 'json', REVERSED).expect(200);
    await send(app, '/impact/actions', 'json', TRACKED_ACTION).expect(200);
    expect(events.action.map((event) => event.status)).to.deep.equal(['REVERSED']);
    expect(staleActions(events).map((event) => [event.status, event.payout])).to.deep.equal([['PENDING', '27.75']]);
  });

  it('F46: with ordering "none", the late original is emitted as an action after all', async () => {
    const { app, events } = createApp({ ordering: 'none' });
    await send(app, '/impact/actions', 'json', REVERSED).expect(200);
    await send(app, '/impact/actions', 'json', TRACKED_ACTION).expect(200);
    expect(events.action.map((event) => event.status)).to.deep.equal(['REVERSED', 'PENDING']);
    expect(events.stale).to.deep.equal([]);
  });

  it('F47: the key covers the whole content, so a different payload is never taken for a repeat', async () => {
    const { app, events } = createApp();
    await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200);
    await send(app, '/impact/actions', 'query', { ...TRACKED_ACTION, Payout: '2775.00' }).expect(200);
    await send(app, '/impact/actions', 'query', { ...TRACKED_ACTION, Unknown: 'x' }).expect(200);
    expect(new Set(events.action.map((event) => event.meta.key)).size).to.equal(3);
  });

  it('F48: with the store down no 2xx and no emit; after it recovers a resend is credited once', async () => {
    let down = true;
    const memory = new MemoryStore();
    const flaky: PostbackStore = {
      begin: async (key, subject): Promise<BeginResult<undefined>> => {
        await sleep(5);
        if (down) throw new Error('ECONNREFUSED');
        return memory.begin(key, subject);
      },
    };
    const { app, events } = createApp({ store: flaky });
    const res = await send(app, '/impact/actions', 'json', TRACKED_ACTION).expect(503);
    expect(errorCode(res.text)).to.equal('store.failed');
    expect(res.headers['retry-after']).to.equal('10');
    expectNoEmit(events);
    down = false;
    await send(app, '/impact/actions', 'json', TRACKED_ACTION).expect(200);
    await send(app, '/impact/actions', 'json', TRACKED_ACTION).expect(200);
    expect(events.action).to.have.length(1);
  });

  it('F49-F50: a throwing and a rejecting listener do not stop the others, escape nothing, and the retry runs again', async () => {
    const { app, postbacks, events } = createApp({}, { listen: false });
    const calls: string[] = [];
    let failing = true;
    postbacks.on('action', () => {
      calls.push('sync');
      if (failing) throw new Error('sync failure');
    });
    postbacks.on('action', async () => {
      calls.push('async');
      if (failing) throw new Error('async failure');
    });
    postbacks.on('action', () => void calls.push('third'));
    // The host has not handled it, so impact.com must retry: 500, where a store-first design would say 2xx.
    await request(app).get('/impact/actions?ActionId=1').expect(500);
    expect(calls).to.deep.equal(['sync', 'async', 'third']);
    expect(
      events.error.filter((error) => error.code === 'listener.failed').map((error) => (error.cause as Error).message),
    ).to.deep.equal(['sync failure', 'async failure']);
    failing = false;
    await request(app).get('/impact/actions?ActionId=1').expect(200);
    expect(calls).to.have.length(6);
  });

  it('F51: with no error listener an internal failure leaves the process running', async () => {
    const { app, postbacks } = createApp({}, { listen: false });
    postbacks.removeAllListeners('error');
    postbacks.on('action', () => Promise.reject(new Error('boom')));
    postbacks.on('duplicate', () => {
      throw new Error('a throwing duplicate listener');
    });
    postbacks.on('rejected', () => Promise.reject(new Error('a rejecting monitor')));
    await request(app).get('/impact/actions?ActionId=1').expect(500);
    await request(app).get('/impact/actions?Payout=x').expect(400);
    await sleep(10);
  });

  it('F52: with no subscriber the postback is not acknowledged and not remembered', async () => {
    const { app, postbacks } = createApp({}, { listen: false });
    await request(app).get('/impact/actions?ActionId=1').expect(503);
    const seen: string[] = [];
    postbacks.on('action', (event) => void seen.push(event.actionId));
    await request(app).get('/impact/actions?ActionId=1').expect(200);
    expect(seen).to.deep.equal(['1']);
  });

  it('F53: listeners that never settle get answers within the timeout, and timers do not grow with their number', async () => {
    const { app, postbacks } = createApp({ listenerTimeout: 50 }, { listen: false });
    postbacks.on('action', () => new Promise(() => undefined));
    const timers = () => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    const before = timers();
    const started = Date.now();
    const statuses = await Promise.all(
      Array.from({ length: 40 }, (_, index) => request(app).get(`/impact/actions?ActionId=${index}`)),
    );
    expect(statuses.map((res) => res.status)).to.deep.equal(Array.from({ length: 40 }, () => 503));
    expect(Date.now() - started).to.be.below(2000);
    await sleep(20);
    // 40 hung listeners; a leak would leave 40 timers. Closing supertest's servers may leave one.
    expect(timers() - before).to.be.at.most(2);
  });

  it('F56: a postback replayed much later is still a duplicate while its key is kept', async () => {
    const { app, events } = createApp({ store: new MemoryStore({ maxAgeMs: 60_000 }) });
    await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200);
    await sleep(50);
    await send(app, '/impact/actions', 'form', TRACKED_ACTION).expect(200);
    expect(events.action).to.have.length(1);
    expect(events.duplicate).to.have.length(1);
  });
});
