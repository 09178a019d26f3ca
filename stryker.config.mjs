// Mutation testing of the money path: `npm run mutate` (not in CI). See package.json's "//" for
// the StrykerJS version and the mocha 12 workaround in stryker/mocha-runner.mjs.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'mocha',
  // Not the default "@stryker-mutator/*": the mocha runner is loaded through the workaround.
  plugins: ['./stryker/mocha-runner.mjs', '@stryker-mutator/typescript-checker'],
  // The tests are TypeScript: every test runner worker loads tsx, as .mocharc.json's "import"
  // does for mocha (Stryker's mocha runner does not read "import").
  testRunnerNodeArgs: ['--import', 'tsx'],
  mochaOptions: {
    // Its spec and require (the root hooks). Stryker's mocha runner runs without mocha's
    // timeout, check-leaks and globals: its own timeouts stop a mutant that hangs.
    config: '.mocharc.json',
    // Tests whose code under test runs in a child process (dist/ or a tsx fixture server, where no
    // mutant is active) or in the packed package: they cannot kill a mutant, and Stryker would run
    // them for every static mutant.
    ignore: [
      'test/browser.test.ts',
      'test/package.test.ts',
      'test/readme.test.ts',
      'test/example-app.test.ts',
      'test/shutdown.test.ts',
      'test/cli.test.ts',
      'test/reconcile-cli.test.ts',
      'test/cli-inspects-only.test.ts',
      'test/crash.test.ts',
      'test/crash-inbox.test.ts',
      'test/crash-postgres.test.ts',
      // Minutes of seeded runs and real servers crashed: every mutant would run them all. The
      // example tests of the invariants (test/invariants/) cover the same mechanisms.
      'test/explore.test.ts',
      'test/real-faults.test.ts',
    ],
  },
  coverageAnalysis: 'perTest',
  // Mutants that do not compile are set aside before any test runs.
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  // The money path: delivery, the journal, reconciliation, and the stores' claim and commit code
  // (their claims, commits, releases, renewals and inbox takes; not their options, schemas, pruning
  // or inbox statistics). Line ranges follow the code: keep them on the claim classes and methods.
  mutate: [
    'lib/delivery/**/*.ts',
    'lib/journal/**/*.ts',
    'lib/reconcile/**/*.ts',
    'lib/stores/claim-lost.ts',
    'lib/stores/sqlite/group-commit.ts',
    'lib/stores/memory/memory-keys.ts',
    'lib/stores/memory/memory-store.ts',
    'lib/stores/postgres/postgres-attempts.ts',
    'lib/stores/postgres/postgres-claim.ts',
    'lib/stores/retry-while-busy.ts',
    'lib/stores/sqlite/sqlite-store.ts:52-130',
    'lib/stores/sqlite/sqlite-store.ts:203-338',
    'lib/stores/sqlite/sqlite-inbox.ts:187-280',
    'lib/stores/sqlite/sqlite-inbox.ts:345-386',
    'lib/stores/redis/redis-store.ts:46-140',
    'lib/stores/redis/redis-store.ts:198-222',
    'lib/stores/postgres/postgres-inbox.ts:73-186',
    'lib/stores/postgres/postgres-inbox.ts:287-323',
    'lib/stores/postgres/postgres-store.ts:172-193',
  ],
  ignorePatterns: ['/.tmp', '/coverage', '*.tgz'],
  concurrency: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  tempDirName: '.stryker-tmp',
};
