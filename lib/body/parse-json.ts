import { PostbackError } from '../errors';
import {
  addField,
  assertFieldCount,
  createRecord,
  MAX_NESTING_DEPTH,
  type FieldRecord,
  type FieldValue,
} from './field-record';

/**
 * Reads a JSON postback body with a strict reader rather than JSON.parse alone, because JSON.parse
 * silently keeps the last of two equal keys (`{"Payout":"1","Payout":"999"}`), turns numbers
 * into doubles (`1.10` becomes `1.1`, `9007199254740993` loses its last digit), and recurses
 * without a depth bound. Here duplicate keys are a 400, numbers keep their exact text so an
 * unquoted `{Payout}` equals the same value sent by GET, `true`/`false` become text, `null`
 * becomes "" (absent), and nesting is capped.
 */
export function parseJsonBody(text: string, maxFields: number): FieldRecord {
  return parseCompactFlatObject(text, maxFields) ?? readJsonBody(text, maxFields);
}

/** The strict reader on its own, for every body: what parseJsonBody must always agree with. */
export function readJsonBody(text: string, maxFields: number): FieldRecord {
  const reader = new JsonReader(text);
  reader.skipWhitespace();
  if (text.charCodeAt(reader.position) !== OPEN_BRACE) {
    throw invalid('a JSON body must be an object');
  }
  const record = reader.readObject(1, maxFields);
  reader.skipWhitespace();
  if (reader.position !== text.length) throw invalid('unexpected content after the JSON object');
  return record;
}

/**
 * A fast path for the common body: one flat object of strings written without whitespace, as a
 * template filled in by impact.com or any JSON serialiser comes. There JSON.parse (native,
 * several times faster than the reader) gives exactly what the reader would. Only strings
 * means no number read differently; and such a text is exactly as long as the keys and values
 * JSON.parse kept plus their quotes, colons and commas, only when it holds no whitespace, no
 * escape (each is longer than what it stands for) and no repeated key (JSON.parse keeps the
 * last one silently). Anything else gives null and goes to the reader, which also words every
 * refusal.
 */
function parseCompactFlatObject(text: string, maxFields: number): FieldRecord | null {
  // A compact object opens with `{"`; anything else is not worth a JSON.parse.
  if (text.charCodeAt(0) !== OPEN_BRACE || text.charCodeAt(1) !== QUOTE) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const members = parsed as Record<string, unknown>;
  let count = 0;
  // `{`, and for each member its key and value, four quotes, a colon and a comma or `}`.
  let compactLength = 1;
  for (const key in members) {
    const value = members[key];
    if (typeof value !== 'string') return null;
    count += 1;
    compactLength += key.length + value.length + 6;
  }
  if (count === 0 || count > maxFields || compactLength !== text.length) return null;
  // JSON.parse makes `__proto__` an own key like any other; dropping the prototype afterwards
  // gives the same null-prototype record as the reader's.
  return Object.setPrototypeOf(members, null) as FieldRecord;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

function invalid(message: string): PostbackError {
  return new PostbackError('body.invalid', `invalid JSON: ${message}`);
}

class JsonReader {
  position = 0;

  constructor(private readonly text: string) {}

  skipWhitespace(): void {
    const { text } = this;
    let code = text.charCodeAt(this.position);
    while (code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09) {
      this.position += 1;
      code = text.charCodeAt(this.position);
    }
  }

  readObject(depth: number, maxFields: number): FieldRecord {
    if (depth > MAX_NESTING_DEPTH) throw invalid(`nested deeper than ${MAX_NESTING_DEPTH} levels`);
    const record = createRecord();
    this.position += 1;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.position) === CLOSE_BRACE) {
      this.position += 1;
      return record;
    }
    let count = 0;
    for (;;) {
      if (this.text.charCodeAt(this.position) !== QUOTE) throw invalid(`expected a key at ${this.position}`);
      const key = this.readString();
      this.skipWhitespace();
      if (this.text.charCodeAt(this.position) !== COLON) throw invalid(`expected ":" at ${this.position}`);
      this.position += 1;
      this.skipWhitespace();
      count += 1;
      assertFieldCount(count, maxFields);
      addField(record, key, this.readValue(depth));
      this.skipWhitespace();
      const next = this.text.charCodeAt(this.position);
      this.position += 1;
      if (next === CLOSE_BRACE) return record;
      if (next !== COMMA) throw invalid(`expected "," or "}" at ${this.position - 1}`);
      this.skipWhitespace();
    }
  }

  private readArray(depth: number): FieldValue[] {
    if (depth > MAX_NESTING_DEPTH) throw invalid(`nested deeper than ${MAX_NESTING_DEPTH} levels`);
    const items: FieldValue[] = [];
    this.position += 1;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.position) === CLOSE_BRACKET) {
      this.position += 1;
      return items;
    }
    for (;;) {
      items.push(this.readValue(depth));
      this.skipWhitespace();
      const next = this.text.charCodeAt(this.position);
      this.position += 1;
      if (next === CLOSE_BRACKET) return items;
      if (next !== COMMA) throw invalid(`expected "," or "]" at ${this.position - 1}`);
      this.skipWhitespace();
    }
  }

  private readValue(depth: number): FieldValue {
    const code = this.text.charCodeAt(this.position);
    if (code === QUOTE) return this.readString();
    // Nested values are frozen as they are made (see FieldValue).
    if (code === OPEN_BRACE) return Object.freeze(this.readObject(depth + 1, Number.POSITIVE_INFINITY));
    if (code === OPEN_BRACKET) return Object.freeze(this.readArray(depth + 1));
    for (const [literal, value] of LITERALS) {
      if (this.text.startsWith(literal, this.position)) {
        this.position += literal.length;
        return value;
      }
    }
    NUMBER.lastIndex = this.position;
    const match = NUMBER.exec(this.text);
    if (match === null) throw invalid(`unexpected character at ${this.position}`);
    this.position += match[0].length;
    return match[0];
  }

  private readString(): string {
    const { text } = this;
    let position = this.position + 1;
    let result = '';
    let chunkStart = position;
    for (;;) {
      const code = text.charCodeAt(position);
      if (Number.isNaN(code)) throw invalid('unterminated string');
      if (code === QUOTE) break;
      if (code < 0x20) throw invalid(`control character in a string at ${position}`);
      if (code !== BACKSLASH) {
        position += 1;
        continue;
      }
      result += text.slice(chunkStart, position);
      const escape = text.charAt(position + 1);
      if (escape === 'u') {
        const hex = text.slice(position + 2, position + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw invalid(`bad \\u escape at ${position}`);
        result += String.fromCharCode(parseInt(hex, 16));
        position += 6;
      } else {
        const decoded = ESCAPES[escape];
        if (decoded === undefined) throw invalid(`bad escape at ${position}`);
        result += decoded;
        position += 2;
      }
      chunkStart = position;
    }
    this.position = position + 1;
    return result + text.slice(chunkStart, position);
  }
}

const LITERALS: readonly (readonly [string, string])[] = [
  ['true', 'true'],
  ['false', 'false'],
  ['null', ''],
];
