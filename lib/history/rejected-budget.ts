/**
 * How many refused postbacks history stores per minute: a forged flood must not fill the
 * store. Counted by the wall clock's minute; the excess is counted, not stored.
 */
export class RejectedBudget {
  #minute = -1;
  #taken = 0;
  /** Refused postbacks over the budget since the receiver started. */
  notStored = 0;

  constructor(private readonly perMinute: number) {}

  /** True when one more refused postback may be stored now (`now` in ms since the epoch). */
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
