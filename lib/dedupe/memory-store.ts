import { positiveInteger } from './optional-module';
import type { ClaimResult, DedupeStore } from './store';

export interface MemoryStoreOptions {
  /** Keys kept at most; the oldest go first. Default 100,000 (about 25 MB). */
  readonly maxKeys?: number;
  /** How long a handled key is remembered, in ms. Default 7 days. */
  readonly maxAgeMs?: number;
  /** How long a claim holds without commit or release before another may take it, in ms. Default 5 minutes. */
  readonly leaseMs?: number;
}

interface Entry {
  state: 'in-flight' | 'handled';
  expiresAt: number;
}

const PRUNE_EVERY = 256;

const DEFAULTS = { maxKeys: 100_000, maxAgeMs: 7 * 24 * 60 * 60 * 1000, leaseMs: 5 * 60 * 1000 };

/**
 * The default store: one process, bounded by count and age. It forgets on restart, so a
 * postback handled just before a crash, whose answer never reached impact.com, is handled
 * again on the retry; a durable store closes that gap.
 */
export class MemoryStore implements DedupeStore {
  readonly maxKeys: number;
  readonly maxAgeMs: number;
  readonly leaseMs: number;
  private readonly entries = new Map<string, Entry>();
  private writes = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.maxKeys = positiveInteger('maxKeys', options.maxKeys ?? DEFAULTS.maxKeys);
    this.maxAgeMs = positiveInteger('maxAgeMs', options.maxAgeMs ?? DEFAULTS.maxAgeMs);
    this.leaseMs = positiveInteger('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs);
  }

  /** Keys held now, in flight or handled. */
  get size(): number {
    return this.entries.size;
  }

  claim(key: string): ClaimResult {
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry !== undefined && entry.expiresAt > now) return entry.state;
    this.entries.delete(key);
    this.entries.set(key, { state: 'in-flight', expiresAt: now + this.leaseMs });
    this.prune(now);
    return 'claimed';
  }

  commit(key: string): void {
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.entries.set(key, { state: 'handled', expiresAt: now + this.maxAgeMs });
      this.prune(now);
      return;
    }
    // Updated in place: the key keeps its place in the eviction order, that of its claim,
    // a moment before; a delete and re-insert into a Map of 100,000 keys cost more.
    entry.state = 'handled';
    entry.expiresAt = now + this.maxAgeMs;
  }

  release(key: string): void {
    if (this.entries.get(key)?.state === 'in-flight') this.entries.delete(key);
  }

  /**
   * Drops the oldest keys past maxKeys, and expired keys from the front of the order. Entries
   * are in the order they were claimed, so the front holds the oldest; expiry is checked
   * there only every PRUNE_EVERY writes, since walking the Map on each write was the store's
   * main cost.
   */
  private prune(now: number): void {
    this.writes += 1;
    const checkExpiry = this.writes % PRUNE_EVERY === 0;
    if (this.entries.size <= this.maxKeys && !checkExpiry) return;
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxKeys && entry.expiresAt > now) break;
      this.entries.delete(key);
    }
  }
}
