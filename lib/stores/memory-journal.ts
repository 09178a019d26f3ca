import type { JournalRecord } from './store';

interface JournalEntry {
  readonly record: JournalRecord;
  readonly expiresAt: number;
}

/** MemoryStore's journal: the last record of each subject, bounded by count and age like its keys. */
export class MemoryJournal {
  private entries = new Map<string, JournalEntry>();

  constructor(
    private readonly maxRecords: number,
    private readonly maxAgeMs: number,
  ) {}

  /** The subject's record, or null. */
  read(subject: string): JournalRecord | null {
    const entry = this.entries.get(subject);
    if (entry === undefined) return null;
    if (entry.expiresAt > Date.now()) return entry.record;
    this.entries.delete(subject);
    return null;
  }

  /** Keeps the subject's record as the newest; once past the bound by a tenth, drops the oldest. */
  write(subject: string, record: JournalRecord): void {
    // Deleted first, so that the subject moves to the end of the Map's order (the newest).
    this.entries.delete(subject);
    this.entries.set(subject, { record, expiresAt: Date.now() + this.maxAgeMs });
    if (this.entries.size > this.maxRecords + Math.ceil(this.maxRecords / 10)) this.trim();
  }

  /**
   * Keeps the newest records, in one pass over the Map: deleting from its front one at a time
   * would step over every earlier deletion, as iteration skips the holes a delete leaves. Runs
   * once per maxRecords/10 new subjects, so about ten steps per record written.
   */
  private trim(): void {
    const now = Date.now();
    const newest = [...this.entries].slice(-this.maxRecords).filter(([, entry]) => entry.expiresAt > now);
    this.entries = new Map(newest);
  }
}
