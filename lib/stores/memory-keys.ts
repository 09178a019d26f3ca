import { type HeldState, KeyTable, SlotState } from './key-table';
import { clock } from '../clock';

/** What a claim of a key finds: free (now claimed), held by a claim, or committed before. */
export type KeyClaim = 'claimed' | 'in-flight' | 'handled';

export interface MemoryKeysSettings {
  readonly maxKeys: number;
  readonly maxAgeMs: number;
  readonly leaseMs: number;
}

const PRUNE_EVERY = 256;

const STATE_NAMES = { [SlotState.inFlight]: 'in-flight', [SlotState.handled]: 'handled' } as const;

/**
 * MemoryStore's dedupe keys: one process, bounded by count and age. A claim neither committed
 * nor released lapses after the lease.
 *
 * Keys are evicted oldest claim first. They are held in a KeyTable, outside what the garbage
 * collector traces, in claim order.
 */
export class MemoryKeys {
  readonly maxKeys: number;
  readonly maxAgeMs: number;
  readonly leaseMs: number;
  private readonly table = new KeyTable();
  private writes = 0;

  constructor(settings: MemoryKeysSettings) {
    this.maxKeys = settings.maxKeys;
    this.maxAgeMs = settings.maxAgeMs;
    this.leaseMs = settings.leaseMs;
  }

  /** Keys held now, in flight or handled. */
  get size(): number {
    return this.table.size;
  }

  /** Whether the key is held, and how, without claiming it. */
  peek(key: string): 'free' | 'in-flight' | 'handled' {
    const slot = this.table.find(key);
    if (slot < 0 || this.table.expiryOf(slot) <= clock.now()) return 'free';
    return STATE_NAMES[this.table.stateOf(slot)];
  }

  claim(key: string): KeyClaim {
    const now = clock.now();
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
    const now = clock.now();
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
