import { clock } from '../../lib/clock';

/**
 * The stores' clock, moved by hand in the tests of a describe block: at `start` before each test,
 * the real clock again after it. Leases, backoff and retention are then tried at their very edge,
 * never by waiting.
 */
export function useStoreClock(start: number): { set(ms: number): void; advance(ms: number): void; now(): number } {
  let time = start;
  const realNow = clock.now;
  beforeEach(() => {
    time = start;
    clock.now = () => time;
  });
  afterEach(() => {
    clock.now = realNow;
  });
  return {
    set: (ms) => {
      time = ms;
    },
    advance: (ms) => {
      time += ms;
    },
    now: () => time,
  };
}
