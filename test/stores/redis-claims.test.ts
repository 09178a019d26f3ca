import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import Redis from 'ioredis';
import { RedisStore, type StoreClaim } from '../../lib';
import { ClaimLostError } from '../../lib/stores/claim-lost';
import { REDIS_URL, requireRedis } from '../helpers/services';
import { claimOf, failureOf } from '../helpers/claims';

/** Redis leases run on Redis's own clock: a short one, waited out for real. */
const SHORT_LEASE_MS = 50;

describe('RedisStore claims: lost claims name what they held, and odd answers fail', () => {
  let prefix = '';
  let client: Redis | undefined;
  const opened: RedisStore[] = [];

  before(async function () {
    await requireRedis(this);
  });
  beforeEach(() => {
    prefix = `impact-postbacks-test:${randomUUID()}:`;
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
    // Handled keys are kept for the retention (90 days): this test's go now.
    const raw = client ?? new Redis(REDIS_URL);
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length > 0) await raw.del(...keys);
    raw.disconnect();
    client = undefined;
  });

  function open(leaseMs: number): RedisStore {
    const store = new RedisStore({ url: REDIS_URL, keyPrefix: prefix, leaseMs, lockTimeoutMs: 30 });
    opened.push(store);
    return store;
  }

  function connect(): Redis {
    client = new Redis(REDIS_URL);
    return client;
  }

  /** A claim of `subject` by a store with a short lease, waited out, then taken over by another store. */
  async function lapsedAndTakenOver(
    key: string,
    subject: string | null,
  ): Promise<{ lapsed: StoreClaim<undefined>; current: StoreClaim<undefined> }> {
    const lapsed = claimOf(await open(SHORT_LEASE_MS).begin(key, subject));
    await sleep(SHORT_LEASE_MS * 3);
    const current = claimOf(await open(10_000).begin(key, subject));
    return { lapsed, current };
  }

  it('refuses a lapsed claim’s commit with ClaimLostError naming its subject’s lock, and writes nothing', async () => {
    const { lapsed, current } = await lapsedAndTakenOver('k1', 'action:1');
    const error = await failureOf(() => lapsed.commit({ status: 'PENDING' }, 'delivered'));
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message.startsWith(`the claim of ${prefix}lock:action:1: another claim`)).to.equal(
      true,
      (error as Error).message,
    );
    const raw = connect();
    expect(await raw.get(`${prefix}journal:action:1`)).to.equal(null);
    await current.commit({ status: 'APPROVED' }, 'delivered');
    expect(await raw.get(`${prefix}k1`)).to.equal('handled');
  });

  it('refuses a lapsed claim’s commit of a postback without a subject, naming its key', async () => {
    const { lapsed, current } = await lapsedAndTakenOver('catalog-1', null);
    const error = await failureOf(() => lapsed.commit(null, 'delivered'));
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message.startsWith(`the claim of ${prefix}catalog-1: another claim`)).to.equal(
      true,
      (error as Error).message,
    );
    await current.commit(null, 'delivered');
    expect(await open(10_000).begin('catalog-1', null)).to.equal('handled');
  });

  it('renews a claim it still holds; a renew after another claim took it over throws ClaimLostError naming it', async () => {
    const held = claimOf(await open(10_000).begin('k0', 'action:0'));
    await held.renew?.();

    const { lapsed } = await lapsedAndTakenOver('k1', 'action:1');
    const error = await failureOf(() => lapsed.renew?.());
    expect(error).to.be.instanceOf(ClaimLostError);
    expect((error as Error).message.startsWith(`the claim of ${prefix}lock:action:1: `)).to.equal(
      true,
      (error as Error).message,
    );

    const keyOnly = await lapsedAndTakenOver('catalog-1', null);
    const keyError = await failureOf(() => keyOnly.lapsed.renew?.());
    expect(keyError).to.be.instanceOf(ClaimLostError);
    expect((keyError as Error).message.startsWith(`the claim of ${prefix}catalog-1: `)).to.equal(
      true,
      (keyError as Error).message,
    );
  });

  it('fails a claim, naming the answer, when a Redis-like server answers the claim script with something unexpected', async () => {
    const real = connect();
    let answer: unknown = 'OK';
    // A real connection whose answers to the claim script are replaced, as a misbehaving proxy's would be.
    const proxy = {
      eval: async (script: string, numberOfKeys: number, ...args: (string | number)[]): Promise<unknown> => {
        const result = await real.eval(script, numberOfKeys, ...args);
        return script.includes("'NX'") ? answer : result;
      },
      quit: async () => real.quit(),
    };
    const store = new RedisStore({ client: proxy, keyPrefix: prefix });
    const error = await failureOf(() => store.begin('k1', 'action:1'));
    expect((error as Error).message).to.equal('unexpected answer from Redis: OK');

    answer = ['claimed-by-someone'];
    const second = await failureOf(() => store.begin('k2', 'action:2'));
    expect((second as Error).message).to.equal('unexpected answer from Redis: claimed-by-someone');
  });
});
