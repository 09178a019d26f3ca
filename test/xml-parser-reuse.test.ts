import { expect } from 'chai';
import { parseXmlBody } from '../lib/body/parse-xml';
import { PostbackError } from '../lib/errors';
import { TRACKED_ACTION, toXml } from './helpers/fixtures';

/** What parseXmlBody gives for one body: the record as plain entries, or the error code and message. */
function outcome(body: string): unknown {
  try {
    return { record: Object.entries(parseXmlBody(body, 100)) };
  } catch (error) {
    if (!(error instanceof PostbackError)) throw error;
    return { code: error.code, message: error.message };
  }
}

// Every way a parse can end early: an error sax reports, one thrown from a guard while xml2js
// is mid-document, one after the root has closed (when xml2js has already reset itself), and
// an empty result.
const FAILING: readonly (readonly [body: string, code: string])[] = [
  ['<r><ActionId>1</ActionId>', 'body.invalid'],
  ['<r><ActionId>1</ActionId></r>junk', 'body.invalid'],
  ['<r><ActionId>1</ActionId></r><r><ActionId>2</ActionId></r>', 'body.invalid'],
  ['<r><ActionId>1</ActionId></r></r>', 'body.invalid'],
  ['<a/><b/>', 'body.invalid'],
  ['<r><ActionId>1</ActionId><_>x</_></r>', 'body.invalid'],
  ['<r><constructor>1</constructor></r>', 'body.invalid'],
  [`<r>${'<a>'.repeat(40)}${'</a>'.repeat(40)}</r>`, 'body.invalid'],
  ['<r><ActionId>&unknown;</ActionId></r>', 'body.invalid'],
  ['<?xml version="1.0"?>', 'body.invalid'],
  ['<!-- only a comment -->', 'body.invalid'],
  ['<r>text<ActionId>1</ActionId></r>', 'body.invalid'],
  ['<r><Payout>1</Payout><Payout>2</Payout></r>', 'field.duplicate'],
  ['not xml at all', 'body.invalid'],
];

const GOOD = toXml({ ...TRACKED_ACTION });

describe('XML parser reuse: one parser serves every body', () => {
  it('each failing body gives the same answer whatever came before it, and leaves the parser able to read the next', () => {
    const expectedGood = outcome(GOOD);
    expect(expectedGood).to.have.property('record').with.length(Object.keys(TRACKED_ACTION).length);
    const expectedFailures = FAILING.map(([body]) => outcome(body));
    for (const [index, [, code]] of FAILING.entries()) {
      expect(expectedFailures[index]).to.have.property('code', code);
    }
    for (const [index, [body]] of FAILING.entries()) {
      expect(outcome(body), `${body} after a good body`).to.deep.equal(expectedFailures[index]);
      expect(outcome(GOOD), `a good body after ${body}`).to.deep.equal(expectedGood);
      for (const [otherIndex, [other]] of FAILING.entries()) {
        expect(outcome(other), `${other} after ${body}`).to.deep.equal(expectedFailures[otherIndex]);
      }
    }
  });

  it('many good bodies in a row each give their own fields', () => {
    for (let index = 0; index < 50; index += 1) {
      const record = parseXmlBody(toXml({ ActionId: `a-${index}`, Payout: `${index}.00` }), 100);
      expect({ ...record }).to.deep.equal({ ActionId: `a-${index}`, Payout: `${index}.00` });
    }
  });
});
