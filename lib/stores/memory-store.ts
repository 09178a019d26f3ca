import { MemoryJournal } from './memory-journal';
import { MemoryKeys } from './memory-keys';
import { positiveInteger } from './optional-module';
import type { BeginResult, JournalReadResult, JournalRecord, PostbackStore, StoreClaim } from './store';
import { clock } from '../clock';

export interface MemoryStoreOptions {
  /** Keys kept at most, and as many journal records; the oldest go first. Default 100,000. */
  readonly maxKeys?: number;
  /** How long a handled key and a journal record are remembered, in ms. Default 7 days. */
  readonly maxAgeMs?: number;
  /** How long a claim holds without commit or release before another may take it, in ms. Default 5 minutes. */
  readonly leaseMs?: number;
}

const DEFAULTS = { maxKeys: 100_000, maxAgeMs: 7 * 24 * 60 * 60 * 1000, leaseMs: 5 * 60 * 1000 };

class MemoryClaim implements StoreClaim<undefined> {
  readonly transaction = undefined;
  readonly transactional = false;

  constructor(
    private readonly store: MemoryParts,
    private readonly key: string,
    private readonly subject: string | null,
    readonly previous: JournalRecord | null,
    /** When the hold on the subject lapses, as the key's claim does. */
    readonly expiresAt: number,
  ) {}

  commit(record: JournalRecord | null): void {
    this.store.keys.commit(this.key);
    if (this.subject === null) return;
    if (record !== null) this.store.journal.write(this.subject, record);
    this.letGo(this.subject);
  }

  release(): void {
    this.store.keys.release(this.key);
    if (this.subject !== null) this.letGo(this.subject);
  }

  private letGo(subject: string): void {
    if (this.store.holders.get(subject) === this) this.store.holders.delete(subject);
  }
}

/** What MemoryStore's claims share with it. */
interface MemoryParts {
  readonly keys: MemoryKeys;
  readonly journal: MemoryJournal;
  /** The claim holding each subject being handled. */
  readonly holders: Map<string, MemoryClaim>;
}

/**
 * The default store: one process, bounded by count and age. It forgets on restart, so a
 * postback handled just before a crash, whose answer never reached impact.com, is handled
 * again on the retry, and the journal starts empty; a durable store closes that gap.
 *
 * A subject being handled is held like a key: another begin of it answers 'in-flight' until
 * the claim ends or its lease lapses. (The router itself waits for the earlier postback of a
 * subject before it begins the next, so it meets this only after a listener hung.)
 */
export class MemoryStore implements PostbackStore {
  readonly maxKeys: number;
  readonly maxAgeMs: number;
  readonly leaseMs: number;
  private readonly parts: MemoryParts;

  constructor(options: MemoryStoreOptions = {}) {
    this.maxKeys = positiveInteger('maxKeys', options.maxKeys ?? DEFAULTS.maxKeys);
    this.maxAgeMs = positiveInteger('maxAgeMs', options.maxAgeMs ?? DEFAULTS.maxAgeMs);
    this.leaseMs = positiveInteger('leaseMs', options.leaseMs ?? DEFAULTS.leaseMs);
    this.parts = {
      keys: new MemoryKeys({ maxKeys: this.maxKeys, maxAgeMs: this.maxAgeMs, leaseMs: this.leaseMs }),
      journal: new MemoryJournal(this.maxKeys, this.maxAgeMs),
      holders: new Map(),
    };
  }

  /** Dedupe keys held now, in flight or handled. */
  get size(): number {
    return this.parts.keys.size;
  }

  begin(key: string, subject: string | null): BeginResult<undefined> {
    const { keys, journal, holders } = this.parts;
    const now = clock.now();
    const holder = subject === null ? undefined : holders.get(subject);
    if (holder !== undefined && holder.expiresAt > now) {
      // A handled key stays a duplicate whoever holds its subject.
      return keys.peek(key) === 'handled' ? 'handled' : 'in-flight';
    }
    const found = keys.claim(key);
    if (found !== 'claimed') return found;
    if (subject === null) return new MemoryClaim(this.parts, key, null, null, now + this.leaseMs);
    const claim = new MemoryClaim(this.parts, key, subject, journal.read(subject), now + this.leaseMs);
    holders.set(subject, claim);
    return claim;
  }

  readJournal(subjects: readonly string[]): JournalReadResult {
    return subjects.map((subject) => this.parts.journal.read(subject));
  }
}
