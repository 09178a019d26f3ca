import { MemoryJournal } from './memory-journal';
import { MemoryKeys } from './memory-keys';
import { positiveInteger } from '../optional-module';
import type { BeginResult, JournalReadResult, JournalRecord, PostbackStore, StoreClaim } from '../store';
import { clock } from '../../clock';
import { ClaimLostError } from '../claim-lost';
import { DEFAULT_MEMORY_HISTORY_ENTRIES, MemoryHistory } from '../../history/memory-history';

export interface MemoryStoreOptions {
  /** Keys kept at most, and as many journal records; the oldest go first. Default 100,000. */
  readonly maxKeys?: number;
  /** How long a handled key and a journal record are remembered, in ms. Default 7 days. */
  readonly maxAgeMs?: number;
  /** How long a claim holds without commit or release before another may take it, in ms. Default 5 minutes. */
  readonly leaseMs?: number;
  /** History entries kept, the newest; older ones are overwritten. Default 10,000. */
  readonly historyEntries?: number;
}

const DEFAULTS = {
  historyEntries: DEFAULT_MEMORY_HISTORY_ENTRIES,
  maxKeys: 100_000,
  maxAgeMs: 7 * 24 * 60 * 60 * 1000,
  leaseMs: 5 * 60 * 1000,
};

class MemoryClaim implements StoreClaim<undefined> {
  readonly transaction = undefined;
  readonly transactional = false;

  constructor(
    private readonly store: MemoryParts,
    private readonly key: string,
    /** This claim's token on its key. */
    private readonly token: number,
    private readonly subject: string | null,
    readonly previous: JournalRecord | null,
    /** When the hold on the subject lapses, as the key's claim does. */
    public expiresAt: number,
    readonly leaseMs: number,
  ) {}

  commit(record: JournalRecord | null): void {
    const { keys, journal } = this.store;
    if (this.subject !== null && !this.holdsSubject(this.subject)) {
      // Done already (its answer was lost), or taken over: either way nothing more is written.
      if (keys.peek(this.key) === 'handled') return;
      throw new ClaimLostError(`the claim of ${this.subject}`);
    }
    if (keys.peek(this.key) === 'in-flight' && !keys.renew(this.key, this.token)) {
      throw new ClaimLostError(`the claim of ${this.key}`);
    }
    // The record first: one that fails to write (larger than the journal keeps) leaves nothing done.
    if (this.subject !== null && record !== null) journal.write(this.subject, record);
    keys.commit(this.key, this.token);
    if (this.subject !== null) this.letGo(this.subject);
  }

  release(): void {
    this.store.keys.release(this.key, this.token);
    if (this.subject !== null) this.letGo(this.subject);
  }

  renew(): void {
    const subject = this.subject;
    if (
      (subject !== null && this.store.holders.get(subject) !== this) ||
      !this.store.keys.renew(this.key, this.token)
    ) {
      throw new ClaimLostError(`the claim of ${subject ?? this.key}`);
    }
    this.expiresAt = clock.now() + this.leaseMs;
  }

  /**
   * Whether this claim may still write the subject: it holds it, or nobody does and the journal
   * still has the record this claim read (the lease lapsed, but nobody took it over meanwhile).
   */
  private holdsSubject(subject: string): boolean {
    const holder = this.store.holders.get(subject);
    if (holder !== undefined) return holder === this;
    return JSON.stringify(this.store.journal.read(subject)) === JSON.stringify(this.previous);
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
  /** History: a ring of the newest entries, in this process only. */
  readonly history: MemoryHistory;

  constructor(options: MemoryStoreOptions = {}) {
    this.history = new MemoryHistory(
      positiveInteger('historyEntries', options.historyEntries ?? DEFAULTS.historyEntries),
    );
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
    const token = keys.claim(key);
    if (typeof token !== 'number') return token;
    const expiresAt = now + this.leaseMs;
    if (subject === null) return new MemoryClaim(this.parts, key, token, null, null, expiresAt, this.leaseMs);
    const claim = new MemoryClaim(this.parts, key, token, subject, journal.read(subject), expiresAt, this.leaseMs);
    holders.set(subject, claim);
    return claim;
  }

  readJournal(subjects: readonly string[]): JournalReadResult {
    return subjects.map((subject) => this.parts.journal.read(subject));
  }
}
