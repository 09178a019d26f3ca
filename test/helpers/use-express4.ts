/**
 * Loaded with `mocha --require` by `npm run test:express4`: every `require('express')`, the
 * router's own included, resolves to Express 4 (installed as the `express4` alias), so the
 * router's main tests run against Express 4 as well as 5.
 */
import Module from 'node:module';

const moduleWithResolver = Module as unknown as {
  _resolveFilename(request: string, parent: unknown, ...rest: unknown[]): string;
};
const resolve = moduleWithResolver._resolveFilename.bind(Module);
moduleWithResolver._resolveFilename = (request, parent, ...rest) =>
  resolve(
    request === 'express' || request.startsWith('express/') ? request.replace(/^express/, 'express4') : request,
    parent,
    ...rest,
  );

// eslint-disable-next-line @typescript-eslint/no-require-imports -- checks the swap took effect
const version = (require('express/package.json') as { version: string }).version;
if (!version.startsWith('4.')) throw new Error(`expected Express 4, got ${version}`);
console.log(`  (running against Express ${version})`);
