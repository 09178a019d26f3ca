/**
 * How many refused or failed postbacks history stores per minute (`maxRejectedPerMinute`): a
 * forged flood, or one sent while the router is down or closing, must not fill the store.
 * Counted by the wall clock's minute; the excess is counted, not stored.
 */
export class PerMinuteBudget {
  #minute = -1;
  #taken = 0;
  /** Entries over the budget since the receiver started. */
  notStored = 0;

  constructor(private readonly perMinute: number) {}

  /** True when one more entry may be stored now (`now` in ms since the epoch). */
  take(now: number): boolean {
    const minute = Math.floor(now / 60_000);
    if (minute !== this.#minute) {
      this.#minute = minute;
      this.#taken = 0;
    }
    if (this.#taken >= this.perMinute) {
      this.notStored += 1;
      return false;
    }
    this.#taken += 1;
    return true;
  }
}
