// A small run to try the setup on: lib/journal/journal.ts against the test files that exercise
// it, as `npx stryker run stryker/journal.config.mjs`. The test files are chosen with
// mochaOptions.spec, not --testFiles: with testFiles, StrykerJS (9.6.1, and 10.x) reports every
// static mutant as Survived without running a test (stryker-mutator/stryker-js#6144, #6209).
import config from '../stryker.config.mjs';

export default {
  ...config,
  mutate: ['lib/journal/journal.ts'],
  mochaOptions: {
    ...config.mochaOptions,
    spec: ['test/delivery.test.ts', 'test/reconcile.test.ts', 'test/stores/memory-journal.test.ts'],
  },
};
