import { createHook } from 'node:async_hooks';
import path from 'node:path';

const LIB = `${path.resolve(__dirname, '../../lib')}${path.sep}`;

/**
 * Watches the timers the package's own code sets (those Node sets for itself, such as the
 * HTTP date cache, and the test's own, do not count) from now on, so that a test can tell
 * which of them are still alive: what close() must have ended.
 */
export function watchPackageTimers(): { alive(): string[]; stop(): void } {
  const live = new Map<number, string>();
  const limit = Error.stackTraceLimit;
  const hook = createHook({
    init(id, type) {
      if (type !== 'Timeout') return;
      Error.stackTraceLimit = 30;
      const stack = new Error().stack ?? '';
      Error.stackTraceLimit = limit;
      // The frame that set it: past the hook's own and Node's internal ones, and past the
      // setTimeout or setInterval it called (a timer Node sets for itself starts elsewhere).
      const frames = stack
        .split('\n')
        .slice(2)
        .map((line) => line.trim())
        .filter((line) => !line.includes('node:internal'));
      const caller = /^at set(?:Timeout|Interval) \(node:timers/.test(frames[0] ?? '') ? frames[1] : frames[0];
      if (caller?.includes(LIB) === true) live.set(id, caller);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return {
    alive: () => [...live.values()],
    stop: () => {
      hook.disable();
    },
  };
}
