import { KeyTable, SlotState } from './key-table';
import type { JournalRecord } from '../store';
import { clock } from '../../clock';

/** Bytes of arena per record the journal may hold: records of the router's run to about 200. */
const BYTES_PER_RECORD = 256;
/** The least arena, for small journals: room for any record the router writes. */
const MIN_ARENA_BYTES = 64 * 1024;
/** Each record's bytes start with their length, in two bytes. */
const LENGTH_BYTES = 2;
const MAX_RECORD_BYTES = 0xffff;

/**
 * MemoryStore's journal: the last record of each subject, bounded by count and age like its
 * keys, and held outside the JavaScript heap. The subjects are a KeyTable (SHA-256 digests in
 * typed arrays); each record is its JSON text in one byte arena, a ring written in the same
 * order as the table's slots, each slot keeping where its record starts.
 *
 * Kept on the heap instead, as a Map of subjects to JSON strings, a full journal (100,000
 * records) cost the router about 12% more CPU per GET postback than the same router writing
 * no records, against about 5% held here: 200,000 more strings for the garbage collector, and
 * a subject string that is a slice of its request's text keeps all of that text alive.
 *
 * The arena is a ring of `maxRecords × 256` bytes (64 KiB at least). A record is written at the ring's head,
 * whole (a record that would not fit before the end starts again at the front); the oldest
 * records are dropped to make room, and past `maxRecords`. `written` counts every byte the
 * head has passed, so a record's place is `start % size` and the oldest live record's start
 * marks the ring's tail. A record replaced by a newer one of its subject leaves dead bytes
 * behind, reclaimed when the tail passes them.
 */
export class MemoryJournal {
  private readonly table = new KeyTable();
  private readonly arena: Buffer;
  private written = 0;

  constructor(
    private readonly maxRecords: number,
    private readonly maxAgeMs: number,
  ) {
    // Allocated at full size, but the kernel maps its pages only as records reach them.
    this.arena = Buffer.alloc(Math.max(maxRecords * BYTES_PER_RECORD, MIN_ARENA_BYTES));
  }

  /** The subject's record, or null. */
  read(subject: string): JournalRecord | null {
    const slot = this.table.find(subject);
    if (slot < 0) return null;
    if (this.table.expiryOf(slot) <= clock.now()) {
      this.table.remove(slot);
      return null;
    }
    const at = this.table.valueOf(slot) % this.arena.length;
    const length = this.arena.readUInt16LE(at);
    return JSON.parse(this.arena.toString('utf8', at + LENGTH_BYTES, at + LENGTH_BYTES + length)) as JournalRecord;
  }

  /** Keeps the subject's record as the newest, replacing its last one. */
  write(subject: string, record: JournalRecord): void {
    const text = JSON.stringify(record);
    const length = Buffer.byteLength(text);
    const size = LENGTH_BYTES + length;
    if (length > MAX_RECORD_BYTES || size > this.arena.length / 4) {
      throw new RangeError(`a journal record of ${length} bytes is larger than the journal keeps`);
    }
    const slot = this.table.find(subject);
    if (slot >= 0) this.table.remove(slot);
    const start = this.makeRoom(size);
    const at = start % this.arena.length;
    this.arena.writeUInt16LE(length, at);
    this.arena.write(text, at + LENGTH_BYTES);
    this.table.add(subject, SlotState.handled, clock.now() + this.maxAgeMs, start);
    this.written = start + size;
    while (this.table.size > this.maxRecords) this.dropOldest();
  }

  /**
   * Where a record of `size` bytes goes: the head, or the front of the ring when it would not
   * fit before the end; the oldest records whose bytes it would overwrite are dropped first.
   */
  private makeRoom(size: number): number {
    const capacity = this.arena.length;
    const offset = this.written % capacity;
    const start = offset + size > capacity ? this.written + capacity - offset : this.written;
    for (let oldest = this.table.oldest(); oldest >= 0; oldest = this.table.oldest()) {
      // The bytes from start to start + size lie where those from one lap earlier were.
      if (this.table.valueOf(oldest) >= start + size - capacity) break;
      this.table.remove(oldest);
    }
    return start;
  }

  private dropOldest(): void {
    const oldest = this.table.oldest();
    if (oldest >= 0) this.table.remove(oldest);
  }
}
