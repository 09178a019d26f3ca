import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import fc from 'fast-check';
import { MemoryJournal } from '../../lib/stores/memory/memory-journal';
import type { JournalRecord } from '../../lib/stores/store';

type Operation = readonly ['write', number, number] | readonly ['read', number];

/** A record of about `size` bytes, unlike any other: its subject, a serial number and padding. */
function recordOf(subject: string, serial: number, size: number): JournalRecord {
  return { subject, serial: String(serial), padding: 'é'.repeat(Math.max(0, size >> 1)), nothing: null };
}

describe('MemoryStore journal', () => {
  it('reads back the last record written for a subject, or nothing, through wrap-arounds and evictions', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant('write' as const), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 6000 })),
            fc.tuple(fc.constant('read' as const), fc.integer({ min: 0, max: 40 })),
          ),
          { minLength: 1, maxLength: 2000, size: 'max' },
        ),
        (maxRecords: number, operations: Operation[]) => {
          const journal = new MemoryJournal(maxRecords, 60_000);
          const last = new Map<string, JournalRecord>();
          const order: string[] = [];
          let serial = 0;
          for (const operation of operations) {
            const subject = `action:${operation[1]}`;
            if (operation[0] === 'write') {
              serial += 1;
              const record = recordOf(subject, serial, operation[2]);
              journal.write(subject, record);
              last.set(subject, record);
              const earlier = order.indexOf(subject);
              if (earlier >= 0) order.splice(earlier, 1);
              order.push(subject);
              // The record just written is always there.
              expect(journal.read(subject)).to.deep.equal(record);
            } else {
              const found = journal.read(subject);
              // Never another subject's record, nor an older one of this subject.
              if (found !== null) expect(found).to.deep.equal(last.get(subject));
            }
          }
          // At most maxRecords are kept, and they are the newest written.
          const kept = order.filter((subject) => journal.read(subject) !== null);
          expect(kept.length).to.be.at.most(maxRecords);
          expect(kept).to.deep.equal(order.slice(order.length - kept.length));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('keeps the newest maxRecords records when they are small', () => {
    const journal = new MemoryJournal(1000, 60_000);
    for (let index = 0; index < 5000; index += 1) journal.write(`action:${index}`, { status: 'PENDING' });
    const kept = Array.from({ length: 5000 }, (_, index) => journal.read(`action:${index}`) !== null);
    expect(kept.indexOf(true)).to.equal(4000);
    expect(kept.filter(Boolean)).to.have.length(1000);
  });

  it('forgets a record after maxAgeMs', async () => {
    const journal = new MemoryJournal(10, 20);
    journal.write('inquiry:1', { state: 'created' });
    expect(journal.read('inquiry:1')).to.deep.equal({ state: 'created' });
    await sleep(30);
    expect(journal.read('inquiry:1')).to.equal(null);
  });

  it('refuses a record larger than it keeps, and keeps the one before', () => {
    const journal = new MemoryJournal(10, 60_000);
    journal.write('action:1', { status: 'PENDING' });
    expect(() => journal.write('action:1', { status: 'x'.repeat(70_000) })).to.throw(RangeError, /larger than/);
    expect(journal.read('action:1')).to.deep.equal({ status: 'PENDING' });
  });
});
