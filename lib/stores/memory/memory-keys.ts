import { type HeldState, KeyTable, SlotState } from './key-table';
import { clock } from '../../clock';

/** What a claim of a key finds: free (now claimed, with the claim's token), held by a claim, or committed before. */
export type KeyClaim = number | 'in-flight' | 'handled';

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
  /** The last claim's token: each claim of a key in flight keeps its own, as the slot's value. */
  private tokens = 0;

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
    this.tokens += 1;
    this.add(key, SlotState.inFlight, now + this.leaseMs, now, this.tokens);
    return this.tokens;
  }

  /**
   * Marks the key handled, unless another claim holds it in flight now (this one's lease lapsed
   * and it was taken over): then false, and nothing changes.
   */
  commit(key: string, token: number): boolean {
    const now = clock.now();
    const slot = this.table.find(key);
    if (slot >= 0 && this.heldByAnother(slot, token, now)) return false;
    // Updated in place: the key keeps its place in the eviction order, that of its claim a
    // moment before.
    if (slot >= 0) this.table.update(slot, SlotState.handled, now + this.maxAgeMs);
    else this.add(key, SlotState.handled, now + this.maxAgeMs, now);
    return true;
  }

  /** Gives the key up if this claim still holds it in flight. */
  release(key: string, token: number): void {
    const slot = this.table.find(key);
    if (slot >= 0 && this.table.stateOf(slot) === SlotState.inFlight && this.table.valueOf(slot) === token) {
      this.table.remove(slot);
    }
  }

  /** Extends this claim's lease on the key; false if the key is no longer its own in flight. */
  renew(key: string, token: number): boolean {
    const slot = this.table.find(key);
    if (slot < 0 || this.table.stateOf(slot) !== SlotState.inFlight || this.table.valueOf(slot) !== token) {
      return false;
    }
    this.table.update(slot, SlotState.inFlight, clock.now() + this.leaseMs);
    return true;
  }

  private heldByAnother(slot: number, token: number, now: number): boolean {
    return (
      this.table.stateOf(slot) === SlotState.inFlight &&
      this.table.valueOf(slot) !== token &&
      this.table.expiryOf(slot) > now
    );
  }

  /**
   * Adds the newest key, then drops the oldest past maxKeys, and expired keys from the front
   * (the oldest claims); expiry is checked only every PRUNE_EVERY writes.
   */
  private add(key: string, state: HeldState, expiresAt: number, now: number, token = 0): void {
    this.table.add(key, state, expiresAt, token);
    this.writes += 1;
    const checkExpiry = this.writes % PRUNE_EVERY === 0;
    for (let oldest = this.table.oldest(); oldest >= 0; oldest = this.table.oldest()) {
      if (this.table.size <= this.maxKeys && !(checkExpiry && this.table.expiryOf(oldest) <= now)) break;
      this.table.remove(oldest);
    }
  }
}
