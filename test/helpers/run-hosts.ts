/**
 * `npm run test:hosts`: the behaviour suite (formats, allow-list and proxies, tokens, errors,
 * dedupe, the journal and stale, listener failures and timeouts, slow and aborted bodies, the
 * hostile-input catalogue) once per host beside Express, each run with POSTBACK_HOST set
 * (test/helpers/hosts.ts). Express 5 runs it in `mocha`, Express 4 in `npm run test:express4`.
 */
import { spawnSync } from 'node:child_process';
import { HOSTS } from './hosts';

const SUITE = [
  'test/formats.test.ts',
  'test/fields.test.ts',
  'test/ip-allowlist.test.ts',
  'test/delivery.test.ts',
  'test/responses.test.ts',
  'test/handled.test.ts',
  'test/slow-clients.test.ts',
  'test/hostile/*.test.ts',
];

const failed: string[] = [];
for (const host of HOSTS.filter((name) => name !== 'express')) {
  console.log(`\n  (running the behaviour suite on ${host})`);
  const mocha = spawnSync(
    process.execPath,
    [
      require.resolve('mocha/bin/mocha.js'),
      '--no-config',
      '--import=tsx',
      '--require',
      'test/helpers/root-hooks.ts',
      '--check-leaks',
      '--timeout',
      '10000',
      '--reporter',
      'dot',
      ...SUITE,
    ],
    { stdio: 'inherit', env: { ...process.env, POSTBACK_HOST: host } },
  );
  if (mocha.status !== 0) failed.push(host);
}
if (failed.length > 0) {
  console.error(`behaviour suite failed on: ${failed.join(', ')}`);
  process.exitCode = 1;
}
