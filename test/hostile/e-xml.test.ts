import type http from 'node:http';
import { expect } from 'chai';
import { comparable, createApp, errorCode } from '../helpers/create-app';
import { TRACKED_ACTION } from '../helpers/fixtures';
import { XML_DEEP_NESTING, XML_ENTITY_EXPANSION, XML_SIZE_STRESS } from '../helpers/hostile-xml';
import { send, sendBytes } from '../helpers/send';
import { startServer } from '../helpers/server';
import { expectNoEmit } from './helpers';

async function postXml(body: string | Buffer, contentType = 'application/xml') {
  const target = createApp();
  const res = await sendBytes(
    target.app,
    '/impact/actions',
    contentType,
    Buffer.isBuffer(body) ? body : Buffer.from(body),
  );
  return { res, ...target };
}

describe('hostile E: XML bodies', () => {
  describe('E32-E33: DOCTYPE and ENTITY are refused before parsing; nothing is read or fetched', () => {
    let hits = 0;
    let canary: Awaited<ReturnType<typeof startServer>>;
    before(async () => {
      canary = await startServer((_req: http.IncomingMessage, res: http.ServerResponse) => {
        hits += 1;
        res.end('leaked');
      });
    });
    after(async () => canary.close());

    const documents = () => [
      `<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r><ActionId>&xxe;</ActionId></r>`,
      `<!DOCTYPE r [<!ENTITY xxe SYSTEM "${canary.base}/">]><r><ActionId>&xxe;</ActionId></r>`,
      `<?xml version="1.0"?><!DOCTYPE r SYSTEM "${canary.base}/dtd"><r><ActionId>1</ActionId></r>`,
      ...XML_ENTITY_EXPANSION,
      `<r><!-- a --><ActionId>1</ActionId></r><!doctype r>`,
      `<r><ActionId>1</ActionId><!ENTITY x "y"></r>`,
    ];
    for (let index = 0; index < 7; index += 1) {
      it(`document ${index + 1}`, async () => {
        const { res, events } = await postXml(documents()[index] ?? '');
        expect(res.status).to.equal(400);
        expect(res.text).to.match(/^body\.invalid: invalid XML: DOCTYPE/);
        expect(res.text).to.not.match(/root:|leaked|lol/);
        expect(hits).to.equal(0);
        expectNoEmit(events);
      });
    }
  });

  it('E34: 10,000 nested elements get a fast 400 from the depth guard', async () => {
    const { res, events } = await postXml(XML_DEEP_NESTING);
    expect(res.status).to.equal(400);
    expect(res.text).to.equal('body.invalid: invalid XML: nested deeper than 16 levels');
    expectNoEmit(events);
  });

  describe('E35-E36: element names that collide with prototypes or xml2js keys', () => {
    const names = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', '$', '_', 'prototype'];
    for (const name of names.filter((n) => n !== 'prototype')) {
      for (const where of ['child', 'nested', 'root', 'twice']) {
        it(`<${name}> as ${where} gets 400, never a 500`, async () => {
          const element = `<${name}><polluted>yes</polluted></${name}>`;
          const body =
            where === 'root'
              ? `<${name}><ActionId>1</ActionId></${name}>`
              : where === 'nested'
                ? `<r><ActionId>1</ActionId><x>${element}</x></r>`
                : where === 'twice'
                  ? `<r><ActionId>1</ActionId>${element}${element}</r>`
                  : `<r><ActionId>1</ActionId>${element}</r>`;
          const { res, events } = await postXml(body);
          expect(res.status).to.equal(400);
          expect(errorCode(res.text)).to.equal('body.invalid');
          expectNoEmit(events);
        });
      }
    }

    it('an element named prototype is an ordinary unknown field', async () => {
      const { res, events } = await postXml('<r><ActionId>1</ActionId><prototype>x</prototype></r>');
      expect(res.status).to.equal(200);
      expect(events.action[0]?.fields['prototype']).to.equal('x');
    });
  });

  it('E37: attributes, repeated or not, are ignored and cannot change an event', async () => {
    const { res, events } = await postXml(
      '<r Payout="9"><ActionId a="1" a="2">1</ActionId><Payout currency="EUR" currency="X">5.00</Payout></r>',
    );
    expect(res.status).to.equal(200);
    expect(events.action[0]?.raw).to.deep.equal({ ActionId: '1', Payout: '5.00' });
  });

  describe('E37: duplicate elements get 400', () => {
    const cases = [
      ['<r><ActionId>1</ActionId><Payout>1</Payout><Payout>999</Payout></r>', 'field.duplicate'],
      ['<r><ActionId>1</ActionId><Payout>1</Payout><payout>999</payout></r>', 'field.duplicate'],
    ] as const;
    for (const [body, code] of cases) {
      it(body, async () => {
        const { res, events } = await postXml(body);
        expect(res.status).to.equal(400);
        expect(errorCode(res.text)).to.equal(code);
        expectNoEmit(events);
      });
    }
  });

  describe('E38: two roots, trailing junk, extra close tags', () => {
    for (const body of [
      '<a/><b/>',
      '<r><ActionId>1</ActionId></r>junk',
      '<r><ActionId>1</ActionId></r></r>',
      '<T/> <T/> </c>',
      '<r><ActionId>1</ActionId></r><r><ActionId>2</ActionId></r>',
      '<r><ActionId>1</ActionId>',
    ]) {
      it(JSON.stringify(body), async () => {
        const { res, events } = await postXml(body);
        expect(res.status).to.equal(400);
        expect(errorCode(res.text)).to.equal('body.invalid');
        expectNoEmit(events);
      });
    }
  });

  describe('E39: empty, whitespace-only and non-XML bodies with an XML type', () => {
    for (const body of [
      '',
      '   \n ',
      'ActionId=1',
      '{"ActionId":"1"}',
      '<r>text only</r>',
      '<r>text<ActionId>1</ActionId></r>',
    ]) {
      it(JSON.stringify(body), async () => {
        const { res, events } = await postXml(body);
        expect(res.status).to.equal(400);
        expect(['body.invalid', 'field.missing']).to.include(errorCode(res.text));
        expectNoEmit(events);
      });
    }
  });

  describe('E40: size stress inside the limit stays fast', () => {
    // Their time is measured in `npm run bench`, against the catalogue's bound.
    for (const [name, body, status] of XML_SIZE_STRESS) {
      it(`${name}: ${status}`, async () => {
        const { res } = await postXml(body);
        expect(res.status).to.equal(status);
      });
    }
  });

  describe('E41: encoding confusion', () => {
    it('the header charset wins over an XML declaration', async () => {
      const { res, events } = await postXml(
        '<?xml version="1.0" encoding="ISO-8859-1"?><r><ActionId>1</ActionId><SubId1>é</SubId1></r>',
      );
      expect(res.status).to.equal(200);
      expect(events.action[0]?.subId1).to.equal('é');
    });

    it('a UTF-16 body gets 400', async () => {
      const { res, events } = await postXml(Buffer.from('\ufeff<r><ActionId>1</ActionId></r>', 'utf16le'));
      expect(res.status).to.equal(400);
      expectNoEmit(events);
    });

    it("HTML entity names, and XML's in another case, are invalid XML: only the five and &#...; are read", async () => {
      for (const value of ['1&nbsp;2', '1&eacute;2', '1&AMP;2', '1&copy;2', '1&#X41;2', '1 & 2']) {
        const { res, events } = await postXml(`<r><ActionId>1</ActionId><SubId1>${value}</SubId1></r>`);
        expect(res.status, value).to.equal(400);
        expect(errorCode(res.text), value).to.equal('body.invalid');
        expectNoEmit(events);
      }
      const { res, events } = await postXml(
        '<r><ActionId>1</ActionId><SubId1>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;<![CDATA[&nbsp; & ]]><!-- &copy; --></SubId1></r>',
      );
      expect(res.status).to.equal(200);
      expect(events.action[0]?.subId1).to.equal('<>&"\'AB&nbsp; & ');
    });

    it('CDATA holding markup is plain text', async () => {
      const { res, events } = await postXml('<r><ActionId>1</ActionId><SubId1><![CDATA[<b>x</b>]]></SubId1></r>');
      expect(res.status).to.equal(200);
      expect(events.action[0]?.subId1).to.equal('<b>x</b>');
    });

    it('a namespaced <ns:ActionId> is not ActionId', async () => {
      const { res, events } = await postXml('<r xmlns:ns="urn:x"><ns:ActionId>1</ns:ActionId></r>');
      expect(res.status).to.equal(400);
      expect(errorCode(res.text)).to.equal('field.missing');
      expectNoEmit(events);
    });
  });

  it('E42: the same postback in XML, JSON, form and GET gives one event and one key', async () => {
    const { app, events } = createApp();
    await send(app, '/impact/actions', 'xml', TRACKED_ACTION).expect(200);
    for (const format of ['json', 'form', 'query'] as const)
      await send(app, '/impact/actions', format, TRACKED_ACTION).expect(200);
    expect(events.action).to.have.length(1);
    expect(events.duplicate.map((event) => comparable(event))).to.deep.equal(
      [1, 2, 3].map(() => comparable(events.action[0])),
    );
  });
});
