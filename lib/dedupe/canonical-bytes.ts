import type { FieldValue } from '../body/field-record';

/**
 * Writes the text a dedupe key hashes, as UTF-8 bytes, into one buffer reused from key to key:
 * built as a string, the same text made a few kilobytes of short-lived strings per postback.
 *
 * The text: every string as `s<length>:<text>`, a list as `a<count>:` and its items, a record
 * as `o<count>:` and, in sorted key order, `<length>:<key>` and the value. Lengths count UTF-16
 * code units. Lone surrogates are written as U+FFFD, as Node's UTF-8 encoder writes them.
 */
export class CanonicalBytes {
  private bytes = new Uint8Array(4096);
  private length = 0;

  reset(): void {
    this.length = 0;
  }

  /** The bytes written since the last reset; valid until the next write. */
  view(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }

  tag(tag: 's' | 'a' | 'o', count: number): void {
    this.room(12);
    this.bytes[this.length++] = tag.charCodeAt(0);
    this.count(count);
  }

  /** `<length>:<text>`, the form of a record key. */
  counted(text: string): void {
    this.room(12);
    this.count(text.length);
    this.utf8(text);
  }

  value(value: FieldValue): void {
    if (typeof value === 'string') {
      this.tag('s', value.length);
      this.utf8(value);
    } else if (Array.isArray(value)) {
      const items = value as readonly FieldValue[];
      this.tag('a', items.length);
      for (const item of items) this.value(item);
    } else {
      const record = value as Readonly<Record<string, FieldValue>>;
      const keys = Object.keys(record).sort();
      this.tag('o', keys.length);
      for (const key of keys) {
        this.counted(key);
        this.value(record[key] as FieldValue);
      }
    }
  }

  /** A decimal count and a colon. */
  private count(count: number): void {
    const digits = String(count);
    for (let i = 0; i < digits.length; i += 1) this.bytes[this.length++] = digits.charCodeAt(i);
    this.bytes[this.length++] = 0x3a; // :
  }

  private utf8(text: string): void {
    this.room(text.length * 3);
    const { bytes } = this;
    let at = this.length;
    for (let i = 0; i < text.length; i += 1) {
      const code = text.charCodeAt(i);
      if (code < 0x80) {
        bytes[at++] = code;
      } else if (code < 0x800) {
        bytes[at++] = 0xc0 | (code >> 6);
        bytes[at++] = 0x80 | (code & 0x3f);
      } else if (code >= 0xd800 && code <= 0xdfff) {
        const next = text.charCodeAt(i + 1);
        if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          const point = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
          bytes[at++] = 0xf0 | (point >> 18);
          bytes[at++] = 0x80 | ((point >> 12) & 0x3f);
          bytes[at++] = 0x80 | ((point >> 6) & 0x3f);
          bytes[at++] = 0x80 | (point & 0x3f);
          i += 1;
        } else {
          // A lone surrogate: U+FFFD, EF BF BD.
          bytes[at++] = 0xef;
          bytes[at++] = 0xbf;
          bytes[at++] = 0xbd;
        }
      } else {
        bytes[at++] = 0xe0 | (code >> 12);
        bytes[at++] = 0x80 | ((code >> 6) & 0x3f);
        bytes[at++] = 0x80 | (code & 0x3f);
      }
    }
    this.length = at;
  }

  private room(needed: number): void {
    if (this.length + needed <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + needed));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
}
