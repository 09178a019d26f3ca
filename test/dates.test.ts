import { expect } from 'chai';
import fc from 'fast-check';
import { isoText, parseIsoDate } from '../lib/fields/values';

// The grammar as a regular expression: the reference the hand-written reader must agree with.
const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(Z)|([+\- ])(\d{2}):?(\d{2}))$/;

function reference(text: string): number | null {
  const match = ISO_DATE.exec(text);
  if (match === null) return null;
  const [, year, month, day, hour, minute, second = '0', fraction = '0', zulu, sign, offsetHours, offsetMinutes] =
    match;
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const local = Date.UTC(y, mo - 1, d, h, mi, s, Number(fraction.padEnd(3, '0').slice(0, 3)));
  if (new Date(local).getUTCDate() !== d) return null;
  if (zulu !== undefined) return local;
  const [oh, om] = [Number(offsetHours), Number(offsetMinutes)];
  if (oh > 23 || om > 59) return null;
  return local - (sign === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
}

const twoDigits = fc.integer({ min: 0, max: 99 }).map((value) => String(value).padStart(2, '0'));
const wellFormed = fc
  .record({
    year: fc.integer({ min: 0, max: 9999 }).map((value) => String(value).padStart(4, '0')),
    month: twoDigits,
    day: twoDigits,
    hour: twoDigits,
    minute: twoDigits,
    seconds: fc.option(
      fc
        .tuple(twoDigits, fc.option(fc.stringMatching(/^[0-9]{0,11}$/)))
        .map(([s, f]) => `:${s}${f === null ? '' : `.${f}`}`),
    ),
    offset: fc.oneof(
      fc.constant('Z'),
      fc
        .tuple(fc.constantFrom('+', '-', ' '), twoDigits, fc.constantFrom(':', ''), twoDigits)
        .map((parts) => parts.join('')),
    ),
  })
  .map((d) => `${d.year}-${d.month}-${d.day}T${d.hour}:${d.minute}${d.seconds ?? ''}${d.offset}`);
// Well-formed dates with one character replaced, dropped or added: the edges of the grammar.
const damaged = fc
  .tuple(wellFormed, fc.nat(), fc.constantFrom('', '0', '9', ':', '-', '+', 'T', 'Z', '.', ' ', 'x', '٣'), fc.nat(2))
  .map(([text, at, char, mode]) => {
    const i = at % (text.length + 1);
    return mode === 0
      ? text.slice(0, i) + char + text.slice(i + 1)
      : mode === 1
        ? text.slice(0, i) + char + text.slice(i)
        : text.slice(0, i);
  });

describe('ISO 8601 date reader', () => {
  it('agrees with the grammar written as a regular expression', () => {
    fc.assert(
      fc.property(fc.oneof(wellFormed, damaged, fc.string({ maxLength: 30 })), (text) => {
        expect(parseIsoDate(text)?.getTime() ?? null, JSON.stringify(text)).to.equal(reference(text));
      }),
      { numRuns: 20_000 },
    );
  });

  it('reads impact.com dates, a space for an unencoded +, and fractions', () => {
    expect(parseIsoDate('2024-09-10T10:42:38-07:00')?.toISOString()).to.equal('2024-09-10T17:42:38.000Z');
    expect(parseIsoDate('2024-09-10T10:42:38 02:00')?.toISOString()).to.equal('2024-09-10T08:42:38.000Z');
    expect(parseIsoDate('2024-09-10T10:42:38.5Z')?.toISOString()).to.equal('2024-09-10T10:42:38.500Z');
    expect(parseIsoDate('2024-09-10T10:42+0530')?.toISOString()).to.equal('2024-09-10T05:12:00.000Z');
    expect(parseIsoDate('2024-02-30T10:42:38Z')).to.equal(null);
    expect(parseIsoDate('2024-09-10 10:42:38Z')).to.equal(null);
  });

  it('writes a date exactly as Date#toISOString does, years outside 0-9999 included', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date(-8.64e15), max: new Date(8.64e15), noInvalidDate: true }), (date) => {
        expect(isoText(date)).to.equal(date.toISOString());
      }),
      { numRuns: 20_000 },
    );
    for (const text of ['0000-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z', '2024-09-10T07:05:09.007Z']) {
      expect(isoText(new Date(text))).to.equal(text);
    }
  });
});
