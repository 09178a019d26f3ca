import { hash } from 'node:crypto';

/** What a slot holds: nothing (removed), a claim in flight, or a handled key. */
export const SlotState = { free: 0, inFlight: 1, handled: 2 } as const;
export type SlotState = (typeof SlotState)[keyof typeof SlotState];
/** The state of a slot that holds a key: any slot `find` returns. */
export type HeldState = Exclude<SlotState, typeof SlotState.free>;

/** A key as nine 32-bit words: 256 bits of digest, then a tag saying where they came from. */
const WORDS = 9;
const TAG_WORD = 8;
/** The tag of a digest hashed from the whole key; a decoded one carries its prefix's number. */
const HASHED = 0;
/** The tag of a short key held as its own characters: this plus its length. */
const INLINE = 1000;
/** Latin-1 characters that fit in the digest's eight words. */
const INLINE_CHARS = 32;
/** Numbers per index bucket: slot + 1, and the digest's hash. */
const BUCKET_WORDS = 2;
const INITIAL_CAPACITY = 1024;
/** Prefixes numbered for decoded keys; past this many, keys are hashed. */
const MAX_PREFIXES = 64;
/** The router's keys: `route:` and 43 base64url characters, a SHA-256 digest already. */
const DIGEST_CHARS = 43;
/** Each base64url character's value, -1 for any other code below 128. */
const BASE64URL = new Int8Array(128).fill(-1);
const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
for (let value = 0; value < 64; value += 1) BASE64URL[BASE64URL_ALPHABET.charCodeAt(value)] = value;

/**
 * Keys, each with a state and an expiry, in the order they were added, held in typed arrays
 * rather than as JavaScript strings and objects. The garbage collector does not look inside a
 * typed array, and a Map of 100,000 keys was 100,000 strings and entries it traced on every
 * major collection: 25 MB of a 35.6 MB heap, and a quarter more instructions for the
 * postbacks during which a major collection ran (README, Performance).
 *
 * A key is held as a 256-bit digest and a tag, 36 bytes whatever its length. The router's keys
 * (`actions:` and a base64url SHA-256) are decoded, not hashed: their digest's bytes, tagged
 * with the number of their prefix. A key of at most 32 Latin-1 characters (the journal's
 * subjects, `action:8882.1234.1234567`, mostly are) is held as its own characters, tagged with
 * its length. Any other key is hashed with SHA-256 and tagged 0. Two keys are the same if their
 * digests and tags are: exact for decoded and short keys (only the canonical base64url spelling
 * is decoded), and as sure as SHA-256 for hashed ones, which the dedupe key itself already rests
 * on. Decoding a key took 0.6 µs, hashing one 1.7 µs.
 *
 * Slots form a ring in the order of adding, so the oldest slot is always at the head. A
 * removed slot stays in the ring as free until it reaches the head or the ring is compacted.
 * An open-addressing index (linear probing, at most half full) finds a digest's slot.
 */
export class KeyTable {
  private capacity = INITIAL_CAPACITY;
  private digests = new Int32Array(INITIAL_CAPACITY * WORDS);
  private states = new Uint8Array(INITIAL_CAPACITY);
  private expiries = new Float64Array(INITIAL_CAPACITY);
  /** A number the owner keeps with each key (MemoryJournal: where its record is). */
  private values = new Float64Array(INITIAL_CAPACITY);
  /**
   * Two numbers per bucket: slot + 1 of an indexed digest (0 where empty), and the digest's mixed
   * hash. A probe compares hashes before it reads a digest, and a removal moves entries by their
   * hashes, so neither reads the digests of the other keys it passes: those lie anywhere in a
   * table of megabytes, each a likely cache miss.
   */
  private index = new Int32Array(INITIAL_CAPACITY * 2 * BUCKET_WORDS);
  private mask = INITIAL_CAPACITY * 2 - 1;
  private head = 0;
  /** Ring positions in use from the head, free slots included. */
  private used = 0;
  private live = 0;
  /** The digest of the last key asked about: a claim and its commit ask about the same key. */
  private readonly digest = new Int32Array(WORDS);
  private digestHash = 0;
  private digestKey: string | null = null;
  private readonly prefixNumbers = new Map<string, number>();

  /** Keys held. */
  get size(): number {
    return this.live;
  }

  /** The slot holding `key`, or -1. */
  find(key: string): number {
    this.digestOf(key);
    const { digest, digestHash, digests, index, mask } = this;
    for (let bucket = digestHash & mask; ; bucket = (bucket + 1) & mask) {
      const entry = index[bucket * BUCKET_WORDS] as number;
      if (entry === 0) return -1;
      if (index[bucket * BUCKET_WORDS + 1] !== digestHash) continue;
      const slot = entry - 1;
      let at = slot * WORDS;
      let same = true;
      for (let word = 0; word < WORDS; word += 1, at += 1) {
        if (digests[at] !== digest[word]) {
          same = false;
          break;
        }
      }
      if (same) return slot;
    }
  }

  /** Adds `key` as the newest slot, with a value of the owner's; it must not be held. */
  add(key: string, state: HeldState, expiresAt: number, value = 0): void {
    this.digestOf(key);
    if (this.used === this.capacity) this.compact();
    const slot = (this.head + this.used) % this.capacity;
    this.digests.set(this.digest, slot * WORDS);
    this.states[slot] = state;
    this.expiries[slot] = expiresAt;
    this.values[slot] = value;
    this.used += 1;
    this.live += 1;
    this.indexSlot(slot, this.digestHash);
  }

  /** The state of a slot `find` returned: removed slots are never found. */
  stateOf(slot: number): HeldState {
    return this.states[slot] as HeldState;
  }

  expiryOf(slot: number): number {
    return this.expiries[slot] as number;
  }

  valueOf(slot: number): number {
    return this.values[slot] as number;
  }

  update(slot: number, state: HeldState, expiresAt: number): void {
    this.states[slot] = state;
    this.expiries[slot] = expiresAt;
  }

  remove(slot: number): void {
    this.unindexSlot(slot);
    this.states[slot] = SlotState.free;
    this.live -= 1;
  }

  /** The oldest slot held, or -1 if none; free slots at the head are dropped on the way. */
  oldest(): number {
    while (this.used > 0) {
      if (this.states[this.head] !== SlotState.free) return this.head;
      this.head = (this.head + 1) % this.capacity;
      this.used -= 1;
    }
    return -1;
  }

  private digestOf(key: string): void {
    if (key === this.digestKey) return;
    if (!this.decode(key) && !this.inline(key)) {
      const bytes = hash('sha256', key, 'buffer');
      for (let word = 0; word < TAG_WORD; word += 1) this.digest[word] = bytes.readInt32LE(word * 4);
      this.digest[TAG_WORD] = HASHED;
    }
    this.digestHash = mixDigest(this.digest, 0);
    this.digestKey = key;
  }

  /** Writes a short Latin-1 key's characters into `digest`; false if it is longer or wider. */
  private inline(key: string): boolean {
    if (key.length > INLINE_CHARS) return false;
    this.digest.fill(0, 0, TAG_WORD);
    for (let at = 0; at < key.length; at += 1) {
      const code = key.charCodeAt(at);
      if (code > 0xff) return false;
      const word = at >> 2;
      this.digest[word] = (this.digest[word] as number) | (code << ((at & 3) * 8));
    }
    this.digest[TAG_WORD] = INLINE + key.length;
    return true;
  }

  /** Decodes a key of the router's form into `digest`; false if it is not of that form. */
  private decode(key: string): boolean {
    const colon = key.length - DIGEST_CHARS - 1;
    if (colon < 1 || key.charCodeAt(colon) !== 0x3a) return false;
    let bits = 0;
    let pending = 0;
    let word = 0;
    for (let at = colon + 1; at < key.length; at += 1) {
      const code = key.charCodeAt(at);
      const value = code < 128 ? (BASE64URL[code] as number) : -1;
      if (value < 0) return false;
      // Arithmetic rather than shifts: up to 38 bits are pending, more than a shift keeps.
      pending = pending * 64 + value;
      bits += 6;
      if (bits >= 32) {
        bits -= 32;
        const high = Math.floor(pending / 2 ** bits);
        pending -= high * 2 ** bits;
        this.digest[word] = high | 0;
        word += 1;
      }
    }
    // 43 characters carry 258 bits: the last two must be zero, or two spellings would decode alike.
    if (pending !== 0) return false;
    const prefix = key.slice(0, colon);
    let number = this.prefixNumbers.get(prefix);
    if (number === undefined) {
      if (this.prefixNumbers.size >= MAX_PREFIXES) return false;
      number = this.prefixNumbers.size + 1;
      this.prefixNumbers.set(prefix, number);
    }
    this.digest[TAG_WORD] = number;
    return true;
  }

  private indexSlot(slot: number, hash: number): void {
    const { index, mask } = this;
    let bucket = hash & mask;
    while (index[bucket * BUCKET_WORDS] !== 0) bucket = (bucket + 1) & mask;
    index[bucket * BUCKET_WORDS] = slot + 1;
    index[bucket * BUCKET_WORDS + 1] = hash;
  }

  /** Takes a slot out of the index, moving later entries back so that no probe meets a gap. */
  private unindexSlot(slot: number): void {
    const { index, mask } = this;
    let gap = mixDigest(this.digests, slot * WORDS) & mask;
    while (index[gap * BUCKET_WORDS] !== slot + 1) gap = (gap + 1) & mask;
    index[gap * BUCKET_WORDS] = 0;
    for (let bucket = (gap + 1) & mask; index[bucket * BUCKET_WORDS] !== 0; bucket = (bucket + 1) & mask) {
      const hash = index[bucket * BUCKET_WORDS + 1] as number;
      const home = hash & mask;
      // The entry may fill the gap if the gap lies on its probe path, from home to here.
      if (((bucket - home) & mask) >= ((bucket - gap) & mask)) {
        index[gap * BUCKET_WORDS] = index[bucket * BUCKET_WORDS] as number;
        index[gap * BUCKET_WORDS + 1] = hash;
        index[bucket * BUCKET_WORDS] = 0;
        gap = bucket;
      }
    }
  }

  /**
   * The ring is full: moves the held slots to its front, in order, and doubles it only when
   * they fill more than half of it, so removed slots never make it grow. This runs at most
   * once per ring's length of additions.
   */
  private compact(): void {
    const capacity = this.live * 2 > this.capacity ? this.capacity * 2 : this.capacity;
    const digests = new Int32Array(capacity * WORDS);
    const states = new Uint8Array(capacity);
    const expiries = new Float64Array(capacity);
    const values = new Float64Array(capacity);
    let kept = 0;
    for (let i = 0; i < this.used; i += 1) {
      const slot = (this.head + i) % this.capacity;
      if (this.states[slot] === SlotState.free) continue;
      digests.set(this.digests.subarray(slot * WORDS, slot * WORDS + WORDS), kept * WORDS);
      states[kept] = this.states[slot] as number;
      expiries[kept] = this.expiries[slot] as number;
      values[kept] = this.values[slot] as number;
      kept += 1;
    }
    this.capacity = capacity;
    this.digests = digests;
    this.states = states;
    this.expiries = expiries;
    this.values = values;
    this.index = new Int32Array(capacity * 2 * BUCKET_WORDS);
    this.mask = capacity * 2 - 1;
    this.head = 0;
    this.used = kept;
    for (let slot = 0; slot < kept; slot += 1) this.indexSlot(slot, mixDigest(digests, slot * WORDS));
  }
}

/**
 * A digest's hash, mixed from all nine words; its low bits are the index bucket a probe starts
 * from. The router's digests are uniform in every word, but a caller's own key of the same form
 * need not be (`actions:AAAA…AU`, `actions:AAAA…Ak`, 256 bits mostly zero): taken from the
 * first word, such keys all started at one bucket and every claim walked past all the others.
 * With 50,000 of them held, a claim and commit took 1,081 µs instead of 3.7 µs.
 */
function mixDigest(words: Int32Array, at: number): number {
  let mixed = 0;
  for (let word = 0; word < WORDS; word += 1) {
    mixed = Math.imul(mixed ^ (words[at + word] as number), 0x9e3779b1);
    // A product's low bits depend only on its factors' low bits: fold the high ones down.
    mixed ^= mixed >>> 16;
  }
  mixed = Math.imul(mixed, 0x85ebca6b);
  return mixed ^ (mixed >>> 13);
}
