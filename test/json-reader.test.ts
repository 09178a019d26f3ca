import { expect } from 'chai';
import fc from 'fast-check';
import { parseJsonBody } from '../lib/body/parse-json';

/** JSON.parse's answer for one string member, or 'refused'. */
function throughJsonParse(text: string): string {
  try {
    return (JSON.parse(text) as { a: string }).a;
  } catch {
    return 'refused';
  }
}

function throughReader(text: string): string {
  try {
    return parseJsonBody(text, 10)['a'] as string;
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
  it('reads a string member exactly as JSON.parse does, and refuses what it refuses', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), (parts) => {
        const text = `{"a":"${parts.join('')}"}`;
        expect(throughReader(text), JSON.stringify(text)).to.equal(throughJsonParse(text));
      }),
      { numRuns: 5000 },
    );
  });

  it('reads any object of strings JSON.stringify writes', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' })), (object) => {
        expect({ ...parseJsonBody(JSON.stringify(object), 1000) }).to.deep.equal(object);
      }),
      { numRuns: 2000 },
    );
  });
});
