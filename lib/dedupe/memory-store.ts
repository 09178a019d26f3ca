import { type HeldState, KeyTable, SlotState } from './key-table';
import { positiveInteger } from './optional-module';
import type { ClaimResult, DedupeStore } from './store';

export interface MemoryStoreOptions {
  /** Keys kept at most; the oldest go first. Default 100,000 (10–13 MB, outside the JavaScript heap). */
  readonly maxKeys?: number;
  /** How long a handled key is remembered, in ms. Default 7 days. */
  readonly maxAgeMs?: number;
  /** How long a claim holds without commit or release before another may take it, in ms. Default 5 minutes. */
  readonly leaseMs?: number;
}

const PRUNE_EVERY = 256;

const DEFAULTS = { maxKeys: 100_000, maxAgeMs: 7 * 24 * 60 * 60 * 1000, leaseMs: 5 * 60 * 1000 };

const STATE_NAMES = { [SlotState.inFlight]: 'in-flight', [SlotState.handled]: 'handled' } as const;

/**
 * The default store: one process, bounded by count and age. It forgets on restart, so a
 * postback handled just before a crash, whose answer never reached impact.com, is handled
 * again on the retry; a durable store closes that gap.
 *
 * Keys are evicted oldest claim first. They are held in a KeyTable, outside what the garbage
 * collector traces, in claim order.
 */
export class MemoryStore implements DedupeStore {
  readonly maxKeys: number;
  readonly maxAgeMs: number;
  readonly leaseMs: number;
  private readonly table = new KeyTable();
  private writes = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.maxKeys = positiveInteger('maxKeys', options.maxKeys ?? DEFAULTS.maxKeys);
    this.maxAgeMs = positiveInteger('maxAgeMs', options.maxAgeMs ?? DEFAULTS.maxAgeMs);
    this.leaseMs = positiveInteger('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs);
  }

  /** Keys held now, in flight or handled. */
  get size(): number {
    return this.table.size;
  }

  claim(key: string): ClaimResult {
    const now = Date.now();
    const slot = this.table.find(key);
    if (slot >= 0) {
      if (this.table.expiryOf(slot) > now) return STATE_NAMES[this.table.stateOf(slot)];
      // Expired: claimed anew, as the newest key.
      this.table.remove(slot);
    }
    this.add(key, SlotState.inFlight, now + this.leaseMs, now);
    return 'claimed';
  }

  commit(key: string): void {
    const now = Date.now();
    const slot = this.table.find(key);
    // Updated in place: the key keeps its place in the eviction order, that of its claim a
    // moment before.
    if (slot >= 0) this.table.update(slot, SlotState.handled, now + this.maxAgeMs);
    else this.add(key, SlotState.handled, now + this.maxAgeMs, now);
  }

  release(key: string): void {
    const slot = this.table.find(key);
    if (slot >= 0 && this.table.stateOf(slot) === SlotState.inFlight) this.table.remove(slot);
  }

  /**
   * Adds the newest key, then drops the oldest past maxKeys, and expired keys from the front
   * (the oldest claims); expiry is checked only every PRUNE_EVERY writes.
   */
  private add(key: string, state: HeldState, expiresAt: number, now: number): void {
    this.table.add(key, state, expiresAt);
    this.writes += 1;
    const checkExpiry = this.writes % PRUNE_EVERY === 0;
    for (let oldest = this.table.oldest(); oldest >= 0; oldest = this.table.oldest()) {
      if (this.table.size <= this.maxKeys && !(checkExpiry && this.table.expiryOf(oldest) <= now)) break;
      this.table.remove(oldest);
    }
  }
}
