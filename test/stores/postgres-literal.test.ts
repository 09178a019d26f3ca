import { expect } from 'chai';
import { sqlLiteral } from '../../lib/stores/postgres/postgres-literal';

describe('sqlLiteral', () => {
  it("quotes text as node-postgres's escapeLiteral does", () => {
    expect(sqlLiteral('plain')).to.equal("'plain'");
    expect(sqlLiteral("it's")).to.equal("'it''s'");
    expect(sqlLiteral('a\\b')).to.equal(" E'a\\\\b'");
    expect(sqlLiteral("a\\'b")).to.equal(" E'a\\\\''b'");
    expect(sqlLiteral('')).to.equal("''");
  });

  it('writes integers and NULL, and refuses other numbers', () => {
    expect(sqlLiteral(42)).to.equal('42');
    expect(sqlLiteral(null)).to.equal('NULL');
    expect(() => sqlLiteral(1.5)).to.throw(TypeError);
    expect(() => sqlLiteral(Number.NaN)).to.throw(TypeError);
  });
});
