/**
 * XML bodies of the hostile-input catalogue whose cost must stay bounded: the unit tests check
 * each one's answer, and `npm run bench` times them against the catalogue's bound.
 */
export const XML_SIZE_STRESS = [
  ['a 90 KB text node', `<r><ActionId>1</ActionId><Note>${'x'.repeat(90_000)}</Note></r>`, 200],
  ['a 70 KB attribute', `<r a="${'x'.repeat(70_000)}"><ActionId>1</ActionId></r>`, 200],
  [
    // The catalogue's 20,000 do not fit the 100 KB limit: as many as do.
    '9,000 attributes',
    `<r ${Array.from({ length: 9000 }, (_, i) => `a${i}="1"`).join(' ')}><ActionId>1</ActionId></r>`,
    200,
  ],
  ['a very long tag name', `<r><ActionId>1</ActionId><${'t'.repeat(60_000)}>1</${'t'.repeat(30_000)}></r>`, 400],
  ['10,000 siblings', `<r><ActionId>1</ActionId>${'<s>1</s>'.repeat(10_000)}</r>`, 400],
  ['a long identifier', `<r><ActionId>${'1'.repeat(5000)}</ActionId></r>`, 400],
] as const;

/** E34: nesting far past the depth guard. */
export const XML_DEEP_NESTING = `<r><ActionId>1</ActionId>${'<a>'.repeat(10_000)}${'</a>'.repeat(10_000)}</r>`;

/** E33: entity expansion, refused before parsing. */
export const XML_ENTITY_EXPANSION = [
  `<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
    `<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><r><ActionId>&lol3;</ActionId></r>`,
  `<!DOCTYPE r [<!ENTITY a "${'x'.repeat(50_000)}">]><r><ActionId>&a;&a;&a;&a;&a;&a;&a;&a;</ActionId></r>`,
] as const;
