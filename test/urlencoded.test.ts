import { expect } from 'chai';
import fc from 'fast-check';
import { parseUrlEncoded, withoutQueryField } from '../lib/body/parse-urlencoded';
import { PostbackError } from '../lib/errors';

/** What the parser must give: URLSearchParams's pairs, or the error for a repeat or too many. */
function throughUrlSearchParams(text: string, maxFields: number): Record<string, string> | string {
  const pairs = [...new URLSearchParams(text)];
  const record: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [index, [key, value]] of pairs.entries()) {
    if (index + 1 > maxFields) return 'fields.too_many';
    if (Object.hasOwn(record, key)) return 'field.duplicate';
    record[key] = value;
  }
  return record;
}

function throughParser(text: string, maxFields: number): Record<string, string> | string {
  try {
    return { ...parseUrlEncoded(text, maxFields) } as Record<string, string>;
  } catch (error) {
    if (error instanceof PostbackError) return error.code;
    throw error;
  }
}

// Characters that matter to the parse, plus text, non-ASCII and lone surrogates.
const piece = fc.oneof(
  fc.constantFrom('&', '=', '+', '%', '?', '%2', '%25', '%26', '%3D', '%2B', '%20', '%C3%A9', '%E2%82%AC'),
  fc.constantFrom('%C3', '%A9', '%ED%A0%80', '%C0%80', '%F0%9F%98%80', '%FF', '%zz', '%EF%BB%BF'),
  fc.constantFrom('\ud800', '\udc00', 'é', '€', '😀', '\u0000', '#'),
  fc.stringMatching(/^[a-z0-9]{1,4}$/),
  fc.stringMatching(/^[0-9A-Fa-f]{1,2}$/),
);
const urlEncodedText = fc.array(piece, { maxLength: 24 }).map((parts) => parts.join(''));

describe('query and form parser', () => {
  it('gives what URLSearchParams gives, errors included, for random text', () => {
    fc.assert(
      fc.property(urlEncodedText, fc.integer({ min: 1, max: 8 }), (text, maxFields) => {
        expect(throughParser(text, maxFields), JSON.stringify(text)).to.deep.equal(
          throughUrlSearchParams(text, maxFields),
        );
      }),
      { numRuns: 5000 },
    );
  });

  it('agrees on any string at all', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
        expect(throughParser(text, 100), JSON.stringify(text)).to.deep.equal(throughUrlSearchParams(text, 100));
      }),
      { numRuns: 3000 },
    );
  });

  it('decodes a typical postback query', () => {
    const record = parseUrlEncoded(
      '?ActionId=8882.1.2&Payout=27.75&EventDate=2024-09-10T10%3A42%3A38-07%3A00&Name=Cashback+%26+Co&Empty=&Flag',
      100,
    );
    expect({ ...record }).to.deep.equal({
      ActionId: '8882.1.2',
      Payout: '27.75',
      EventDate: '2024-09-10T10:42:38-07:00',
      Name: 'Cashback & Co',
      Empty: '',
      Flag: '',
    });
    expect(Object.getPrototypeOf(record)).to.equal(null);
  });

  it('turns broken percent sequences and lone surrogates into U+FFFD, as URLSearchParams does', () => {
    expect({ ...parseUrlEncoded('a=%C3&b=%ED%A0%80&c=\ud800', 100) }).to.deep.equal({
      a: '\ufffd',
      b: '\ufffd\ufffd\ufffd',
      c: '\ufffd',
    });
  });
});

describe('withoutQueryField', () => {
  /** The fields parsed, less `name`; null when the text is refused (a repeated key). */
  function fieldsLess(text: string, name: string): Record<string, unknown> | null {
    let record: Record<string, unknown>;
    try {
      record = { ...parseUrlEncoded(text, Number.POSITIVE_INFINITY) };
    } catch {
      return null;
    }
    Reflect.deleteProperty(record, name);
    return record;
  }

  it('takes the field out however its name is written, and keeps every other field as it was', () => {
    const cases = [
      'ActionId=1.2&token=s3cret&Payout=5.00',
      '?token=s3cret&ActionId=1.2',
      '%74oken=s3cret&ActionId=1.2',
      'tok%65n=s3cret&ActionId=1.2&&Note=a+b',
      'token&ActionId=%E2%82%AC',
      'ActionId=1.2&token=',
    ];
    for (const text of cases) {
      const kept = withoutQueryField(text, 'token');
      expect(kept, text).not.to.match(/s3cret/);
      expect(fieldsLess(kept, 'token'), text).to.deep.equal(fieldsLess(text, 'token'));
      expect(parseUrlEncoded(kept, 100), text).not.to.have.property('token');
    }
  });

  it('parses to the same fields less that one, for any text', () => {
    const part = fc.constantFrom(
      'token',
      'tok%65n',
      '%74oken',
      'a',
      'b',
      '%',
      '%zz',
      '=',
      '+',
      '&',
      '?',
      '\uD800',
      'é',
    );
    fc.assert(
      fc.property(fc.array(part, { maxLength: 12 }), (parts) => {
        const text = parts.join('');
        const expected = fieldsLess(text, 'token');
        if (expected === null) return;
        expect(fieldsLess(withoutQueryField(text, 'token'), 'token')).to.deep.equal(expected);
        expect(Object.hasOwn(parseUrlEncoded(withoutQueryField(text, 'token'), 1000), 'token')).to.equal(false);
      }),
      { numRuns: 2000 },
    );
  });
});
