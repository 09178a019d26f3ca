/**
 * npm run explore -- [--seeds N] [--from S] [--store memory|sqlite|redis|postgres|all]
 *   [--delivery direct|inbox|all] [--steps K] [--actions A] [--seed S] [--no-minimize]
 *
 * Runs seeded explorations and prints, for each failing seed, its violations and a minimal
 * reproduction (the plan's steps that still fail). Exit status 1 when any seed failed.
 */
import { parseArgs } from 'node:util';
import { STORE_NAMES, type StoreName } from './backends';
import { minimize } from './minimize';
import { describePlan, explore, type DeliveryName, type RunSettings } from './run';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '20' },
    from: { type: 'string', default: '1' },
    seed: { type: 'string' },
    store: { type: 'string', default: 'all' },
    delivery: { type: 'string', default: 'all' },
    steps: { type: 'string', default: '40' },
    actions: { type: 'string', default: '4' },
    'no-minimize': { type: 'boolean', default: false },
  },
});

function count(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(`--${name} must be a positive integer`);
    process.exit(2);
  }
  return value;
}

const stores: StoreName[] =
  values.store === 'all' ? [...STORE_NAMES] : STORE_NAMES.filter((name) => name === values.store);
if (stores.length === 0) {
  console.error(`--store must be one of ${STORE_NAMES.join(', ')} or all`);
  process.exit(2);
}
const deliveries = (values.delivery === 'all' ? ['direct', 'inbox'] : [values.delivery]) as DeliveryName[];
if (!deliveries.every((delivery: string) => delivery === 'direct' || delivery === 'inbox')) {
  console.error('--delivery must be direct, inbox or all');
  process.exit(2);
}
const seeds =
  values.seed === undefined
    ? Array.from({ length: count('seeds', values.seeds) }, (_, index) => count('from', values.from) + index)
    : [count('seed', values.seed)];

async function main(): Promise<void> {
  let failed = 0;
  for (const store of stores) {
    for (const delivery of deliveries) {
      if (delivery === 'inbox' && (store === 'memory' || store === 'redis')) continue;
      const started = Date.now();
      const totals = {
        runs: 0,
        failing: 0,
        requests: 0,
        storeFaults: 0,
        listenerFaults: 0,
        kills: 0,
        reconciliations: 0,
      };
      for (const seed of seeds) {
        const settings: RunSettings = {
          store,
          delivery,
          seed,
          steps: count('steps', values.steps),
          actions: count('actions', values.actions),
        };
        let result: Awaited<ReturnType<typeof explore>>;
        try {
          result = await explore(settings);
        } catch (error) {
          // The harness itself could not run this seed (say, PostgreSQL refusing more connections):
          // reported as failing, and the next seed is run.
          totals.runs += 1;
          totals.failing += 1;
          failed += 1;
          console.log(`\nFAIL ${store} ${delivery} seed ${seed}: the harness could not run it: ${String(error)}`);
          continue;
        }
        totals.runs += 1;
        for (const key of ['requests', 'storeFaults', 'listenerFaults', 'kills', 'reconciliations'] as const) {
          totals[key] += result.figures[key];
        }
        if (totals.runs % 100 === 0) {
          console.log(
            `${store} ${delivery}: ${totals.runs} seeds so far (to seed ${seed}), ${totals.failing} failing, ${((Date.now() - started) / 1000).toFixed(1)} s`,
          );
        }
        if (result.violations.length === 0) continue;
        totals.failing += 1;
        failed += 1;
        console.log(`\nFAIL ${store} ${delivery} seed ${seed}:`);
        for (const violation of result.violations) console.log(`  - ${violation}`);
        if (values['no-minimize']) continue;
        console.log('  minimizing...');
        const smallest = await minimize(result, 2, (line) => console.log(line));
        console.log(
          `  reproduction (${smallest.plan.length} steps; npm run explore -- --store ${store} --delivery ${delivery} --seed ${seed}):`,
        );
        for (const line of describePlan(smallest.plan)) console.log(`    ${line}`);
        for (const violation of smallest.violations) console.log(`  → ${violation}`);
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      console.log(
        `${store} ${delivery}: ${totals.runs} seeds, ${totals.failing} failing, ${seconds} s; ${totals.requests} requests, ${totals.storeFaults} store faults, ${totals.listenerFaults} listener faults, ${totals.kills} kills, ${totals.reconciliations} reconciliations`,
      );
    }
  }
  process.exitCode = failed > 0 ? 1 : 0;
}

void main();
