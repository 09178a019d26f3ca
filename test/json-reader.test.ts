import { expect } from 'chai';
import fc from 'fast-check';
import { parseJsonBody, readJsonBody } from '../lib/body/parse-json';
import { PostbackError } from '../lib/errors';

/** JSON.parse's answer for one string member, or 'refused'. */
function throughJsonParse(text: string): string {
  try {
    return (JSON.parse(text) as { a: string }).a;
  } catch {
    return 'refused';
  }
}

/** Member `a` as a parser reads it, or 'refused'. */
function through(parse: typeof parseJsonBody, text: string): string {
  try {
    return parse(text, 10)['a'] as string;
  } catch {
    return 'refused';
  }
}

// Raw string contents: escapes valid and not, quotes, control characters and any UTF-16.
const piece = fc.oneof(
  fc.constantFrom(
    '\\"',
    '\\\\',
    '\\/',
    '\\n',
    '\\t',
    '\\u00e9',
    '\\ud83d\\ude00',
    '\\u12',
    '\\x',
    '\\',
    '"',
    '\n',
    '\u0001',
  ),
  fc.string({ unit: 'binary', maxLength: 6 }),
);

describe('strict JSON reader', () => {
  for (const [path, read, numRuns] of [
    ['the strict reader', readJsonBody, 5000],
    ['the fast path', parseJsonBody, 2000],
  ] as const) {
    it(`reads a string member exactly as JSON.parse does, and refuses what it refuses, through ${path}`, () => {
      fc.assert(
        fc.property(fc.array(piece, { maxLength: 8 }), (parts) => {
          const text = `{"a":"${parts.join('')}"}`;
          expect(through(read, text), JSON.stringify(text)).to.equal(throughJsonParse(text));
        }),
        { numRuns },
      );
    });
  }

  it('reads any object of strings JSON.stringify writes', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' })), (object) => {
        expect({ ...parseJsonBody(JSON.stringify(object), 1000) }).to.deep.equal(object);
      }),
      { numRuns: 2000 },
    );
  });
});

/** Everything a parse gives: keys and values in order and the prototype, or the refusal. */
function outcome(parse: (text: string, maxFields: number) => object, text: string, maxFields: number): unknown {
  try {
    const record = parse(text, maxFields);
    return { entries: Object.entries(record), prototype: Object.getPrototypeOf(record) as unknown };
  } catch (error) {
    if (!(error instanceof PostbackError)) throw error;
    return { code: error.code, message: error.message };
  }
}

// Keys that collide (repeats, a case variant), that JSON.parse treats specially or orders first
// (`__proto__`, integer-like keys), and any other text.
const key = fc.oneof(
  fc.constantFrom('a', 'A', 'ActionId', '__proto__', 'constructor', '0', '10', 'x y', 'é', ''),
  fc.string({ maxLength: 5 }),
);
const value = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }).map((text) => JSON.stringify(text)) },
  { weight: 1, arbitrary: fc.constantFrom('1', '1.10', '-0', '9007199254740993', 'true', 'false', 'null') },
  { weight: 1, arbitrary: fc.constantFrom('{}', '{"b":"c"}', '[]', '["d"]', '"\\u0041"') },
);
const space = fc.constantFrom('', '', '', ' ', '\n', '\t ');

describe('JSON fast path', () => {
  it('gives exactly what the strict reader gives, or the same refusal, for any flat or nested body', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, value, space, space), { maxLength: 8 }),
        space,
        fc.integer({ min: 1, max: 10 }),
        (members, edge, maxFields) => {
          const inner = members.map(
            ([name, text, before, after]) => `${before}${JSON.stringify(name)}:${after}${text}`,
          );
          const text = `{${inner.join(',')}${edge}}`;
          expect(outcome(parseJsonBody, text, maxFields), text).to.deep.equal(outcome(readJsonBody, text, maxFields));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('refuses a repeated key in a compact body, which JSON.parse alone would take', () => {
    expect(outcome(parseJsonBody, '{"Payout":"1","Payout":"999"}', 10)).to.deep.equal({
      code: 'field.duplicate',
      message: 'field "Payout" was sent more than once',
    });
  });

  it('keeps __proto__ as an ordinary field of a null-prototype record', () => {
    const record = parseJsonBody('{"__proto__":"x","ActionId":"1"}', 10);
    expect(Object.getPrototypeOf(record)).to.equal(null);
    expect(Object.keys(record)).to.deep.equal(['__proto__', 'ActionId']);
    expect(record['__proto__']).to.equal('x');
  });
});
