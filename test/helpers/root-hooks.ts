/**
 * Checks after every test that nothing a sender did escaped the router: no unhandled
 * rejection, no uncaught exception, and Object.prototype exactly as it was.
 */
const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort().join(',');
const escaped: unknown[] = [];

process.on('unhandledRejection', (reason) => escaped.push(reason));
process.on('uncaughtException', (error) => escaped.push(error));

export const mochaHooks = {
  afterEach(this: Mocha.Context): void {
    const now = Object.getOwnPropertyNames(Object.prototype).sort().join(',');
    if (now !== prototypeKeys) throw new Error(`Object.prototype was changed: ${now}`);
    if (({} as Record<string, unknown>)['polluted'] !== undefined) throw new Error('Object.prototype was polluted');
    if (escaped.length > 0) {
      const [first] = escaped.splice(0);
      throw new Error(`an error escaped: ${String(first instanceof Error ? first.stack : first)}`);
    }
  },
};
