import { expect } from 'chai';
import fc from 'fast-check';
import request from 'supertest';
import { comparable, createApp } from '../helpers/create-app';
import { encode, FORMATS, toQuery } from '../helpers/fixtures';
import { send } from '../helpers/send';
import { expectNoEmit } from './helpers';

// Characters XML 1.0 can carry as text (it cannot hold most C0 controls, and turns CR into LF).
const xmlChar = fc
  .oneof(
    fc.string({ unit: 'grapheme', maxLength: 3 }),
    fc.constantFrom(
      '&',
      '<',
      '>',
      '"',
      "'",
      '=',
      '?',
      '#',
      '%',
      '+',
      ' ',
      '/',
      '{',
      '}',
      '[',
      ']',
      '\t',
      '\n',
      'é',
      '€',
      '漢',
      '😀',
    ),
  )
  .filter((text) => !/[\u0000-\u0008\u000b-\u001f\ufffe\uffff\r]/.test(text) && text.isWellFormed());
const text = fc.array(xmlChar, { maxLength: 8 }).map((parts) => parts.join(''));
const placeholder = fc.constantFrom('{SubId1}', '{Payout}', '{ActionId}', '{DeltaAmo unt}', '{x}');
// Weighted so that about half of the postbacks are valid and half are refused.
const money = fc.oneof(
  {
    arbitrary: fc
      .tuple(fc.integer({ min: -99_999, max: 99_999 }), fc.integer({ min: 0, max: 99 }))
      .map(([whole, cents]) => `${whole}.${String(cents).padStart(2, '0')}`),
    weight: 12,
  },
  { arbitrary: fc.constantFrom('1e3', '1,000', ' 5', 'NaN', '0x10'), weight: 1 },
  { arbitrary: fc.oneof(placeholder, fc.constant('')), weight: 2 },
);
// Known text fields refuse control characters, so most of their values are single-line.
const singleLine = text.filter((candidate) => !/[\t\n]/.test(candidate));
const value = fc.oneof(
  { arbitrary: singleLine, weight: 8 },
  { arbitrary: text, weight: 1 },
  placeholder,
  fc.constant(''),
);

const postback = fc.record(
  {
    ActionId: fc.oneof(
      { arbitrary: fc.stringMatching(/^[0-9]{1,5}(\.[0-9]{1,5}){0,2}$/), weight: 10 },
      placeholder,
      fc.constant(''),
    ),
    Payout: money,
    DeltaAmount: money,
    Currency: fc.oneof(
      { arbitrary: fc.constantFrom('usd', 'EUR', 'gbp', ''), weight: 10 },
      fc.constant('EURO'),
      placeholder,
    ),
    Status: fc.oneof(fc.constantFrom('approved', 'PENDING', 'Reversed'), value),
    SubId1: value,
    sub_id2: value,
    CampaignName: value,
    EventDate: fc.oneof(
      fc.constantFrom('2024-09-10T10:42:38-07:00', '2024-09-10T10:42:38Z', '2024-02-30T00:00:00Z', 'soon'),
      placeholder,
    ),
    Note: value,
    landing_page: value,
  },
  { requiredKeys: ['ActionId'] },
);

describe('cross-format property', function () {
  this.timeout(120_000);

  it('any postback gets the same answer as GET, JSON, XML and form, and equal events with one key', async () => {
    await fc.assert(
      fc.asyncProperty(postback, async (fields) => {
        const outcomes = [];
        for (const format of FORMATS) {
          const { app, events } = createApp();
          const res = await send(app, '/impact/actions', format, fields);
          outcomes.push({ format, status: res.status, events });
        }
        const statuses = outcomes.map((outcome) => outcome.status);
        expect(new Set(statuses).size, `${JSON.stringify(fields)} → ${statuses.join(',')}`).to.equal(1);
        if (statuses[0] === 200) {
          const emitted = outcomes.map((outcome) => outcome.events.action);
          for (const list of emitted) expect(list).to.have.length(1);
          const [first, ...rest] = emitted.map((list) => comparable(list[0]));
          for (const other of rest) expect(other).to.deep.equal(first);
          expect(new Set(emitted.map((list) => list[0]?.meta.key)).size).to.equal(1);
        } else {
          expect(statuses[0]).to.be.within(400, 499);
          for (const outcome of outcomes) expectNoEmit(outcome.events);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a malformed variant of any postback gets 4xx and emits nothing', async () => {
    const corruption = fc.constantFrom('duplicate-key', 'truncate', 'doctype', 'trailing');
    await fc.assert(
      fc.asyncProperty(postback, fc.constantFrom(...FORMATS), corruption, async (fields, format, how) => {
        const { app, events } = createApp();
        const withId = { ...fields, ActionId: '1' };
        const { contentType, body } = encode(format, withId);
        let res;
        if (format === 'query') {
          const query =
            how === 'duplicate-key' || how === 'truncate'
              ? `${toQuery(withId)}&ActionId=2`
              : `${toQuery(withId)}&ActionId=%00`;
          res = await request(app).get(`/impact/actions?${query}`);
        } else {
          const source = body ?? '';
          const broken =
            how === 'truncate' && format !== 'form'
              ? source.slice(0, source.length - 2)
              : how === 'doctype' && format === 'xml'
                ? `<!DOCTYPE r>${source}`
                : how === 'trailing' && format !== 'form'
                  ? `${source}${format === 'json' ? '}' : '<x/>'}`
                  : format === 'json'
                    ? source.replace('{', '{"actionid":"2",')
                    : format === 'xml'
                      ? source.replace('<ActionId>', '<actionId>2</actionId><ActionId>')
                      : `${source}&actionId=2`;
          res = await request(app)
            .post('/impact/actions')
            .set('Content-Type', contentType ?? '')
            .send(broken);
        }
        expect(res.status, `${format} ${how}`).to.be.within(400, 499);
        expectNoEmit(events);
      }),
      { numRuns: 150 },
    );
  });
});
