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
  readonly key: string;
  state: 'in-flight' | 'handled';
  expiresAt: number;
}

const PRUNE_EVERY = 256;

const DEFAULTS = { maxKeys: 100_000, maxAgeMs: 7 * 24 * 60 * 60 * 1000, leaseMs: 5 * 60 * 1000 };

/**
 * The default store: one process, bounded by count and age. It forgets on restart, so a
 * postback handled just before a crash, whose answer never reached impact.com, is handled
 * again on the retry; a durable store closes that gap.
 *
 * Keys are evicted oldest claim first, through a queue of entries in claim order. Not by
 * iterating the Map from its front: V8 leaves a deleted Map entry as a hole until the table is
 * rebuilt, and an iterator steps over every hole, so once the store was full each eviction
 * walked tens of thousands of them (up to 40 µs per postback in a benchmark). The ring is sized
 * to the keys held and never reallocated once the store is full.
 */
export class MemoryStore implements DedupeStore {
  readonly maxKeys: number;
  readonly maxAgeMs: number;
  readonly leaseMs: number;
  private readonly entries = new Map<string, Entry>();
  /** Entries in claim order: a ring of `count` slots from `head`; an entry no longer in `entries` is stale. */
  private ring: (Entry | undefined)[] = new Array<Entry | undefined>(1024).fill(undefined);
  private head = 0;
  private count = 0;
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
    this.add({ key, state: 'in-flight', expiresAt: now + this.leaseMs }, now);
    return 'claimed';
  }

  commit(key: string): void {
    const now = Date.now();
    const entry = this.entries.get(key);
    if (entry === undefined) {
      this.add({ key, state: 'handled', expiresAt: now + this.maxAgeMs }, now);
      return;
    }
    // Updated in place: the key keeps its place in the eviction order, that of its claim a
    // moment before.
    entry.state = 'handled';
    entry.expiresAt = now + this.maxAgeMs;
  }

  release(key: string): void {
    if (this.entries.get(key)?.state === 'in-flight') this.entries.delete(key);
  }

  private add(entry: Entry, now: number): void {
    this.entries.set(entry.key, entry);
    if (this.count === this.ring.length) this.makeRoom();
    this.ring[(this.head + this.count) % this.ring.length] = entry;
    this.count += 1;
    this.prune(now);
  }

  private isLive(entry: Entry): boolean {
    return this.entries.get(entry.key) === entry;
  }

  /**
   * Drops the oldest keys past maxKeys, and expired keys from the front of the ring (the
   * oldest claims); expiry is checked only every PRUNE_EVERY writes. Entries released or
   * replaced since their claim are dropped from the ring as they come up.
   */
  private prune(now: number): void {
    this.writes += 1;
    const checkExpiry = this.writes % PRUNE_EVERY === 0;
    while (this.count > 0) {
      const oldest = this.ring[this.head] as Entry;
      const live = this.isLive(oldest);
      if (live && this.entries.size <= this.maxKeys && !(checkExpiry && oldest.expiresAt <= now)) break;
      if (live) this.entries.delete(oldest.key);
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.count -= 1;
    }
  }

  /**
   * The ring is full: keeps its live entries in order, and doubles it only when they fill more
   * than half of it, so released and replaced entries never make it grow. Full store or not,
   * this runs at most once per ring's length of writes.
   */
  private makeRoom(): void {
    const live: Entry[] = [];
    for (let i = 0; i < this.count; i += 1) {
      const entry = this.ring[(this.head + i) % this.ring.length];
      if (entry !== undefined && this.isLive(entry)) live.push(entry);
    }
    const capacity = live.length * 2 > this.ring.length ? this.ring.length * 2 : this.ring.length;
    this.ring = new Array<Entry | undefined>(capacity).fill(undefined);
    for (const [index, entry] of live.entries()) this.ring[index] = entry;
    this.head = 0;
    this.count = live.length;
  }
}
