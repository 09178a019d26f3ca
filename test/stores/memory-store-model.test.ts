import { expect } from 'chai';
import fc from 'fast-check';
import { MemoryStore } from '../../lib/dedupe/memory-store';

/** The eviction rule written plainly: keys kept in claim order, the oldest claim goes first. */
class ModelStore {
  private readonly entries = new Map<string, { state: 'in-flight' | 'handled'; claimedAt: number }>();
  private clock = 0;

  constructor(private readonly maxKeys: number) {}

  get size(): number {
    return this.entries.size;
  }

  claim(key: string): string {
    const entry = this.entries.get(key);
    if (entry !== undefined) return entry.state;
    this.add(key, 'in-flight');
    return 'claimed';
  }

  commit(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) this.add(key, 'handled');
    else entry.state = 'handled';
  }

  release(key: string): void {
    if (this.entries.get(key)?.state === 'in-flight') this.entries.delete(key);
  }

  private add(key: string, state: 'in-flight' | 'handled'): void {
    this.clock += 1;
    this.entries.set(key, { state, claimedAt: this.clock });
    while (this.entries.size > this.maxKeys) {
      const [oldest] = [...this.entries].sort(([, a], [, b]) => a.claimedAt - b.claimedAt)[0] ?? [];
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }
}

const operation = fc.tuple(fc.constantFrom('claim', 'commit', 'release'), fc.integer({ min: 0, max: 40 }));

describe('MemoryStore against a plain model of its eviction order', () => {
  it('answers every claim as the model does, through evictions, releases and re-claims', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(operation, { minLength: 1, maxLength: 3000 }),
        (maxKeys, operations) => {
          const store = new MemoryStore({ maxKeys });
          const model = new ModelStore(maxKeys);
          for (const [kind, index] of operations) {
            const key = `k${index}`;
            if (kind === 'claim') expect(store.claim(key)).to.equal(model.claim(key));
            else if (kind === 'commit') {
              store.commit(key);
              model.commit(key);
            } else {
              store.release(key);
              model.release(key);
            }
            expect(store.size).to.equal(model.size);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
