import { isClaimLost } from '../stores/claim-lost';
import type { StoreClaim } from '../stores/store';
import { isThenable } from './call-listeners';

/** What a wait of a unit ends with when its unit is given up (close() past its timeout). */
export const ABANDONED = Symbol('abandoned');

/** The ticker's longest period, in ms: renewals and waits are at most this late. */
const LONGEST_TICK_MS = 1000;

/**
 * One claim being worked on: it renews the claim's lease while listeners run or a failed commit
 * is tried again (every third of the lease), holds the signal listeners get (`ctx.signal`), and
 * can be given up: its renewals and waits end, and its signal aborts. Its renewals and long
 * waits run on its ClaimUnits' one ticker, so that timers do not grow with the number of
 * listeners that hang. A unit that never waits costs an object.
 */
export class ClaimUnit {
  private controller: AbortController | null = null;
  private renewAt = Infinity;
  private wakeAt = Infinity;
  private wake: (() => void) | null = null;
  /** What ends each wait the unit is in when it is given up. */
  private readonly onAbandon = new Set<() => void>();
  private abandoned = false;

  constructor(
    private readonly claim: StoreClaim<unknown>,
    private readonly units: ClaimUnits,
    /** Told when a renewal fails other than by the claim being lost (the lease may then lapse). */
    private readonly renewFailed: (cause: unknown) => void,
  ) {}

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  /** Whether the ticker has something to do for it: a renewal, or a wait to end. */
  get isWaiting(): boolean {
    return this.renewAt !== Infinity || this.wakeAt !== Infinity;
  }

  /** Renews the claim every third of its lease from now on, if it has one. */
  keepAlive(): void {
    const { leaseMs } = this.claim;
    if (this.renewAt !== Infinity || this.abandoned || leaseMs === undefined || this.claim.renew === undefined) return;
    this.renewAt = Date.now() + leaseMs / 3;
    this.units.watch(this, leaseMs / 3);
  }

  /** Ends the renewals: the claim is committed or released, or another took it over. */
  stop(): void {
    this.renewAt = Infinity;
  }

  /** Gives the unit up: no more renewals, every wait ends, and the listeners' signal aborts. */
  abandon(): void {
    if (this.abandoned) return;
    this.abandoned = true;
    this.stop();
    this.controller?.abort(new Error('impact-postbacks gave this delivery up'));
    for (const end of [...this.onAbandon]) end();
  }

  /**
   * Resolves with the promise's value, with `timedOut` after `ms`, or with ABANDONED once given
   * up. Its time is kept by the ticker (up to a tick late) unless `ownTimer`: a timer of its
   * own, exact, for the waits that answer the sender.
   */
  wait<T, U>(promise: Promise<T>, ms: number, timedOut: U, ownTimer = false): Promise<T | U | typeof ABANDONED> {
    if (this.abandoned) return Promise.resolve(ABANDONED);
    let timer: NodeJS.Timeout | undefined;
    let end: (() => void) | undefined;
    const limits = new Promise<U | typeof ABANDONED>((resolve) => {
      end = () => {
        resolve(ABANDONED);
      };
      this.onAbandon.add(end);
      if (ownTimer) {
        timer = setTimeout(() => {
          resolve(timedOut);
        }, ms);
      } else {
        this.wakeAt = Date.now() + ms;
        this.wake = () => {
          resolve(timedOut);
        };
        this.units.watch(this, ms);
      }
    });
    return Promise.race([promise, limits]).finally(() => {
      clearTimeout(timer);
      this.onAbandon.delete(end as () => void);
      if (!ownTimer) {
        this.wakeAt = Infinity;
        this.wake = null;
      }
    });
  }

  /** Renews if its renewal is due, and ends its wait if its time came. */
  tick(now: number): void {
    if (now >= this.renewAt) {
      const { leaseMs } = this.claim;
      this.renewAt = leaseMs === undefined ? Infinity : now + leaseMs / 3;
      this.renew();
    }
    if (now >= this.wakeAt) this.wake?.();
  }

  private renew(): void {
    const failed = (cause: unknown): void => {
      // A claim taken over is not renewed again: its commit will say so.
      if (isClaimLost(cause)) this.stop();
      else this.renewFailed(cause);
    };
    try {
      const renewed = this.claim.renew?.();
      if (isThenable(renewed)) Promise.resolve(renewed).catch(failed);
    } catch (cause) {
      // A synchronous driver throws (SQLITE_BUSY, a closed database): never out of the ticker.
      failed(cause);
    }
  }
}

/**
 * The units working now: one ticker renews and wakes them all (so that timers do not grow with
 * the number of listeners that hang), and close() waits for them and gives up the rest.
 */
export class ClaimUnits {
  private readonly working = new Map<ClaimUnit, Promise<unknown>>();
  private readonly watched = new Set<ClaimUnit>();
  private ticker: NodeJS.Timeout | null = null;
  private tickMs = LONGEST_TICK_MS;

  add(unit: ClaimUnit, ended: Promise<unknown>): void {
    this.working.set(unit, ended);
    const forget = (): void => {
      this.forget(unit);
    };
    void ended.then(forget, forget);
  }

  /** Ticks for the unit, often enough for one that must act `withinMs` from now. */
  watch(unit: ClaimUnit, withinMs: number): void {
    this.watched.add(unit);
    const period = Math.max(1, Math.min(LONGEST_TICK_MS, withinMs));
    if (this.ticker !== null && period >= this.tickMs) return;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.tickMs = period;
    this.ticker = setInterval(() => {
      this.tick();
    }, period);
    this.ticker.unref();
  }

  /**
   * Waits up to `ms` for every unit working now to end; then gives up those still working and
   * waits a moment (up to `graceMs`) for them to let their claims go.
   */
  async drain(ms: number, graceMs = 1000): Promise<void> {
    const settleAll = (): Promise<unknown> =>
      Promise.all([...this.working.values()].map((ended) => ended.catch(() => undefined)));
    await boundedBy(settleAll(), ms);
    if (this.working.size > 0) {
      for (const unit of [...this.working.keys()]) unit.abandon();
      await boundedBy(settleAll(), graceMs);
    }
    this.watched.clear();
    this.stopTicker();
  }

  private tick(): void {
    const now = Date.now();
    for (const unit of [...this.watched]) {
      unit.tick(now);
      if (!unit.isWaiting) this.watched.delete(unit);
    }
    if (this.watched.size === 0) this.stopTicker();
  }

  private forget(unit: ClaimUnit): void {
    this.working.delete(unit);
    this.watched.delete(unit);
    if (this.watched.size === 0) this.stopTicker();
  }

  private stopTicker(): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    this.tickMs = LONGEST_TICK_MS;
  }
}

async function boundedBy(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, ms));
    }),
  ]);
  clearTimeout(timer);
}
