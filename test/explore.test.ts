import { expect } from 'chai';
import type { BeginResult, PostbackStore } from '../lib';
import { requirePostgres, requireRedis } from './helpers/services';
import type { StoreName } from './explore/backends';
import { describePlan, explore, type DeliveryName } from './explore/run';

/** Seeds each store and delivery mode explores here; `npm run explore` runs more. */
const SEEDS = [1, 2, 3, 4, 5, 6];
const RUNS: readonly (readonly [StoreName, DeliveryName])[] = [
  ['memory', 'direct'],
  ['sqlite', 'direct'],
  ['sqlite', 'inbox'],
  ['redis', 'direct'],
  ['postgres', 'direct'],
  ['postgres', 'inbox'],
];

describe('explorer: seeded interleavings of postbacks, faults, deaths and reconciliation hold every invariant', function () {
  this.timeout(120_000);
  for (const [store, delivery] of RUNS) {
    describe(`${store}, ${delivery} delivery`, () => {
      before(async function () {
        if (store === 'redis') await requireRedis(this);
        if (store === 'postgres') await requirePostgres(this);
      });
      for (const seed of SEEDS) {
        it(`seed ${seed}`, async () => {
          const result = await explore({ store, delivery, seed, steps: 40, actions: 4 });
          const reproduction = [...result.violations, ...describePlan(result.plan)].join('\n');
          expect(result.violations, reproduction).to.deep.equal([]);
        });
      }
    });
  }

  it('finds a planted defect: a store that keeps no journal record', async () => {
    // Its commits record the key and drop the record: every action's journal stays empty.
    const amnesic = (store: PostbackStore<unknown>): PostbackStore<unknown> => ({
      begin: (key, subject) => {
        const found = store.begin(key, subject) as BeginResult<unknown>;
        if (typeof found !== 'object') return found;
        return {
          previous: found.previous,
          transaction: found.transaction,
          transactional: found.transactional,
          commit: (_record, outcome) => found.commit(null, outcome),
          release: (reason) => found.release(reason),
        };
      },
      readJournal: (subjects) => store.readJournal?.(subjects) ?? [],
    });
    const result = await explore({
      store: 'memory',
      delivery: 'direct',
      seed: 1,
      steps: 40,
      actions: 4,
      plant: amnesic,
    });
    expect(result.violations.some((violation) => violation.startsWith('journal:'))).to.equal(true);
  });
});
