import { createHash } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { MemoryKeys } from '../../lib/stores/memory/memory-keys';

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

  /** Every key held, with its state. */
  held(): [string, string][] {
    return [...this.entries].map(([key, { state }]) => [key, state]);
  }

  private add(key: string, state: 'in-flight' | 'handled'): void {
    this.clock += 1;
    this.entries.set(key, { state, claimedAt: this.clock });
    while (this.entries.size > this.maxKeys) {
      let oldest: string | undefined;
      let oldestAt = Infinity;
      for (const [key, { claimedAt }] of this.entries) {
        if (claimedAt < oldestAt) [oldest, oldestAt] = [key, claimedAt];
      }
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }
}

type Operation = readonly ['claim' | 'commit' | 'release', number];

function operations(keys: number, maxLength: number): fc.Arbitrary<Operation[]> {
  return fc.array(fc.tuple(fc.constantFrom('claim', 'commit', 'release'), fc.integer({ min: 0, max: keys })), {
    minLength: 1,
    maxLength,
    // Lengths up to maxLength: fast-check's default size keeps arrays to a few dozen items.
    size: 'max',
  });
}

/**
 * Keys in every form the store tells apart: the router's own (a prefix and a base64url
 * SHA-256, which the store decodes rather than hashes), the same digest under another route,
 * a spelling of it that is not canonical base64url, more prefixes than the store numbers, one
 * character too few to decode, the router's form around 256 bits that are mostly zero (decoded
 * too, and crowding the index unless all their bits choose the bucket), and plain text: up to
 * 32 Latin-1 characters held as they are (among them two that differ only by a trailing NUL,
 * and one of exactly 32), longer or wider ones hashed.
 */
function keyOf(index: number): string {
  const digest = createHash('sha256')
    .update(String(index >> 3))
    .digest('base64url');
  switch (index & 7) {
    case 0:
    case 1:
      return `actions:${digest}`;
    case 2:
      return `clearing:${digest}`;
    case 3: {
      // The last character carries two bits beyond the 256: this spelling sets one of them.
      const last = digest.charCodeAt(42);
      return `actions:${digest.slice(0, 42)}${String.fromCharCode(last === 0x5f ? 0x2d : last + 1)}`;
    }
    case 4:
      return `route${index % 97}:${digest}`;
    case 5:
      return `actions:${digest.slice(1)}`;
    case 6: {
      const sparse = Buffer.alloc(32);
      sparse.writeUInt32BE(index >> 3, 28);
      return `actions:${sparse.toString('base64url')}`;
    }
    default: {
      const group = index >> 3;
      const base = Math.floor(group / 5);
      const plain = [
        `k${base}`,
        `k${base}\u0000`,
        `\u00ff${base}`.padEnd(32, '.'),
        `\u0101${base}`,
        `k${base}`.padEnd(33, '.'),
      ];
      return plain[group % 5] as string;
    }
  }
}

function runAgainstModel(maxKeys: number, sequence: readonly Operation[]): void {
  const store = new MemoryKeys({ maxKeys, maxAgeMs: 7 * 24 * 3600_000, leaseMs: 5 * 60_000 });
  const model = new ModelStore(maxKeys);
  // A claim's token, which its commit and release hand back; the model has no tokens.
  const tokens = new Map<string, number>();
  const claimOf = (key: string): string => {
    const found = store.claim(key);
    if (typeof found !== 'number') return found;
    tokens.set(key, found);
    return 'claimed';
  };
  for (const [kind, index] of sequence) {
    const key = keyOf(index);
    if (kind === 'claim') expect(claimOf(key), `claim ${key}`).to.equal(model.claim(key));
    else if (kind === 'commit') {
      expect(store.commit(key, tokens.get(key) ?? 0)).to.equal(true);
      model.commit(key);
    } else {
      store.release(key, tokens.get(key) ?? 0);
      model.release(key);
    }
    expect(store.size).to.equal(model.size);
  }
  // Every key the model holds is still there, in its state; with the sizes equal, no other is.
  for (const [key, state] of model.held()) expect(claimOf(key), `held ${key}`).to.equal(state);
}

describe('MemoryStore keys against a plain model of its eviction order', () => {
  it('answers every claim as the model does, through evictions, releases and re-claims', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 12 }), operations(40, 3000), runAgainstModel), { numRuns: 60 });
  });

  it('does so with thousands of keys, as its table grows, compacts and removes from crowded buckets', () => {
    fc.assert(fc.property(fc.integer({ min: 500, max: 5000 }), operations(8000, 40_000), runAgainstModel), {
      numRuns: 8,
    });
  });
});
