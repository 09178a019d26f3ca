// @stryker-mutator/mocha-runner (9.6.1 and 10.1.1) reaches into mocha/lib/cli/{run-helpers,options,
// collect-files} with extensionless require() calls. Mocha 12 ships those files as .cjs, which
// require() does not try, so loading the plugin throws "Cannot find module .../run-helpers"
// (stryker-mutator/stryker-js#6205, open). Until a release has that fix, this plugin makes
// require() try .cjs after .js, .json and .node, then hands Stryker the mocha runner's plugins.
// Stryker loads plugins in its main process and in every worker, so both get the fix.
import Module from 'node:module';

const extensions = Module._extensions;
if (!('.cjs' in extensions)) extensions['.cjs'] = extensions['.js'];

const runner = await import('@stryker-mutator/mocha-runner');

export const strykerPlugins = runner.strykerPlugins;
export const strykerValidationSchema = runner.strykerValidationSchema;
