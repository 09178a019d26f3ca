import express from 'express';
import { expect } from 'chai';
import request from 'supertest';
import { createApp, errorCode } from './helpers/create-app';
import { HOST_RUNS_EXPRESS_MIDDLEWARE } from './helpers/hosts';
import { FORMATS, INQUIRY, TRACKED_ACTION } from './helpers/fixtures';
import { send } from './helpers/send';

describe('fields', () => {
  describe('an action event', () => {
    it('carries every known field, typed, plus fields, raw, warnings and meta', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/actions', 'query', TRACKED_ACTION).expect(200);
      const [event] = events.action;
      expect(event).to.deep.include({
        kind: 'action',
        trigger: 'lifecycle',
        actionId: '8882.1234.1234567',
        campaignId: '10306',
        campaignName: 'ACME Outdoor',
        actionTrackerId: '55555',
        actionTrackerName: 'Online Sale',
        mediaPartnerId: '123456',
        mediaPartnerName: 'Cashback & Co <EU>',
        actionType: 'SALE',
        referringType: 'CLICK_COOKIE',
        status: 'PENDING',
        statusDetail: 'IR_BLANK',
        adId: '1000000',
        payout: '27.75',
        deltaPayout: '0.00',
        intendedPayout: '27.75',
        amount: '1000.00',
        deltaAmount: '0.00',
        intendedAmount: '1000.00',
        currency: 'USD',
        originalCurrency: 'EUR',
        originalAmount: '921.40',
        subId1: 'user-42',
        sharedId: 'shared/1?x=1&y=2',
        promoCode: 'SPRING',
        oid: 'ORD-77',
        customerId: 'c-9',
      });
      expect(event?.eventDate?.toISOString()).to.equal('2024-09-10T17:42:38.000Z');
      expect(event?.creationDate?.toISOString()).to.equal('2024-09-10T17:43:01.000Z');
      expect(event?.lockingDate?.toISOString()).to.equal('2024-09-26T07:00:00.000Z');
      expect(event).to.not.have.property('subId2');
      expect(event).to.not.have.property('subId3');
      expect(event?.warnings).to.deep.equal([
        {
          code: 'placeholder.unexpanded',
          field: 'subId3',
          value: '{SubId3}',
          message: 'field "subId3" holds the unexpanded placeholder {SubId3}; treated as absent',
        },
      ]);
      expect(event?.fields['subId3']).to.equal('{SubId3}');
      expect(event?.fields['status']).to.equal('pending');
      expect(event?.raw).to.deep.equal({ ...TRACKED_ACTION });
      expect(event?.meta).to.include({ ip: '127.0.0.1', format: 'query', route: 'actions', path: '/impact/actions' });
      expect(event?.meta.key).to.match(/^actions:[A-Za-z0-9_-]{43}$/);
      expect(event?.meta.receivedAt).to.be.instanceOf(Date);
      expect(Object.isFrozen(event)).to.equal(true);
      expect(Object.isFrozen(event?.fields)).to.equal(true);
    });

    it('keeps its dedupe key from release to release, so a durable store still knows it after an upgrade', async () => {
      const { app, events } = createApp();
      const fields = { ...TRACKED_ACTION, Extra_Key: 'x', EventDate: '2024-09-10T10:42:38.5+02:00' };
      await send(app, '/impact/actions', 'query', fields).expect(200);
      expect(events.action[0]?.meta.key).to.equal('actions:Lo0-HphZgsi2cHMm9a1PAPFIqpnMNoPluqcEf0cXhLY');
    });

    describe('is frozen through and through, so one listener cannot change what the next one sees', () => {
      const json = JSON.stringify({
        ActionId: '1',
        Items: [{ Sku: 'a', Tags: ['x', 'y'] }],
        Meta: { Deep: { Er: 'z' } },
      });
      const xml =
        '<Action><ActionId>1</ActionId><Items><Item><Sku>a</Sku></Item><Item><Sku>b</Sku></Item></Items>' +
        '<Meta><Deep><Er>z</Er></Deep></Meta></Action>';
      const cases = [
        { name: 'a JSON body', contentType: 'application/json', body: json, before: [] },
        { name: 'an XML body', contentType: 'application/xml', body: xml, before: [] },
        { name: 'a body express.json() parsed', contentType: 'application/json', body: json, before: [express.json()] },
      ].filter(({ before }) => HOST_RUNS_EXPRESS_MIDDLEWARE || before.length === 0);
      for (const { name, contentType, body, before } of cases) {
        it(`from ${name}`, async () => {
          const { app, events } = createApp({}, { before });
          await request(app).post('/impact/actions').set('Content-Type', contentType).send(body).expect(200);
          const [event] = events.action;
          const unfrozen: string[] = [];
          const walk = (value: unknown, path: string): void => {
            if (typeof value !== 'object' || value === null || value instanceof Date) return;
            if (!Object.isFrozen(value)) unfrozen.push(path);
            for (const [key, child] of Object.entries(value)) walk(child, `${path}.${key}`);
          };
          walk(event, 'event');
          expect(event?.raw['Items']).to.not.equal(undefined);
          expect(unfrozen).to.deep.equal([]);
        });
      }
    });

    it('is emitted with trigger "clearing" from /clearing', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/clearing', 'json', { ActionId: '1', ClearedDate: '2024-10-01T00:00:00Z' }).expect(200);
      expect(events.action[0]).to.include({ trigger: 'clearing', actionId: '1' });
      expect(events.action[0]?.clearedDate?.toISOString()).to.equal('2024-10-01T00:00:00.000Z');
      expect(events.action[0]?.meta.route).to.equal('clearing');
    });

    it('is refused with 400 field.missing without an action id, or with only a placeholder', async () => {
      const { app, events } = createApp();
      for (const fields of [{ Payout: '1.00' }, { ActionId: '', Payout: '1.00' }, { ActionId: '{ActionId}' }]) {
        const res = await send(app, '/impact/actions', 'query', fields).expect(400);
        expect(errorCode(res.text)).to.equal('field.missing');
      }
      expect(events.action).to.deep.equal([]);
      expect(events.rejected.map((rejection) => rejection.code)).to.deep.equal([
        'field.missing',
        'field.missing',
        'field.missing',
      ]);
    });
  });

  describe('field names', () => {
    const variants = [
      ['placeholder names', { ActionId: '7', Payout: '1.50', SubId1: 'u' }],
      ['snake_case', { action_id: '7', payout: '1.50', sub_id1: 'u' }],
      ['camelCase', { actionId: '7', payout: '1.50', subId1: 'u' }],
      ['any capitalisation', { ACTIONID: '7', PAYOUT: '1.50', subid1: 'u' }],
      ['the data feed name Id', { Id: '7', Payout: '1.50', SubId1: 'u' }],
    ] as const;
    for (const [name, fields] of variants) {
      it(`are matched from ${name}`, async () => {
        const { app, events } = createApp();
        await send(app, '/impact/actions', 'json', fields).expect(200);
        expect(events.action[0]).to.include({ actionId: '7', payout: '1.50', subId1: 'u' });
        expect(Object.keys(events.action[0]?.fields ?? {})).to.deep.equal(['actionId', 'payout', 'subId1']);
      });
    }

    it('are taken from the host mapping in the fields option', async () => {
      const { app, events } = createApp({ fields: { conversion: 'actionId', member: 'subId1', ticket: 'inquiryId' } });
      await send(app, '/impact/actions', 'form', { conversion: 'x.1', Member: 'alice' }).expect(200);
      await send(app, '/impact/inquiries', 'form', { ticket: '9' }).expect(200);
      expect(events.action[0]).to.include({ actionId: 'x.1', subId1: 'alice' });
      expect(events.inquiry[0]).to.include({ inquiryId: '9' });
    });

    it('keep unknown keys in fields, camelCased, with their values as received', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/actions', 'json', {
        ActionId: '1',
        Landing_Page_Url: 'https://x.example/?a=1',
        RefClickId: 'r',
      }).expect(200);
      expect(events.action[0]?.fields).to.deep.equal({
        actionId: '1',
        landingPageUrl: 'https://x.example/?a=1',
        refClickId: 'r',
      });
    });

    describe('that name one field twice', () => {
      const duplicates = [
        ['the same key twice in a query', '?ActionId=1&ActionId=2'],
        ['two spellings in a query', '?ActionId=1&Payout=1&payout=9'],
        ['a query key and a body key', '?Payout=1'],
      ] as const;
      for (const [name, query] of duplicates) {
        it(`are a 400 for ${name}`, async () => {
          const { app, events } = createApp();
          const req =
            name === 'a query key and a body key'
              ? request(app).post(`/impact/actions${query}`).send({ ActionId: '1', Payout: '9' })
              : request(app).get(`/impact/actions${query}`);
          const res = await req.expect(400);
          expect(errorCode(res.text)).to.equal('field.duplicate');
          expect(events.action).to.deep.equal([]);
        });
      }

      it('are a 400 in JSON, XML and form bodies', async () => {
        const { app, events } = createApp();
        const bodies = [
          ['application/json', '{"ActionId":"1","Payout":"1","Payout":"999"}'],
          ['application/json', '{"ActionId":"1","Payout":"1","payout":"999"}'],
          ['application/xml', '<r><ActionId>1</ActionId><Payout>1</Payout><Payout>999</Payout></r>'],
          ['application/x-www-form-urlencoded', 'ActionId=1&Payout=1&Payout=999'],
        ] as const;
        for (const [type, body] of bodies) {
          const res = await request(app).post('/impact/actions').set('Content-Type', type).send(body).expect(400);
          expect(errorCode(res.text), body).to.equal('field.duplicate');
        }
        expect(events.action).to.deep.equal([]);
      });
    });
  });

  describe('money', () => {
    const valid = ['0', '5', '27.75', '-5.00', '1000.00', '1.005', '900719925474099.12345678'];
    const invalid = [
      '9007199254740993',
      '1.123456789',
      '1,000',
      '1e3',
      'NaN',
      '0x10',
      'Infinity',
      ' 5',
      '5 ',
      '+5',
      '.5',
      '5.',
      '05',
      '5,00',
      'five',
      '1.2.3',
    ];
    for (const value of valid) {
      it(`keeps "${value}" as the exact decimal string`, async () => {
        const { app, events } = createApp();
        await send(app, '/impact/actions', 'query', { ActionId: '1', Payout: value, DeltaAmount: value }).expect(200);
        expect(events.action[0]).to.include({ payout: value, deltaAmount: value });
      });
    }
    for (const value of invalid) {
      it(`refuses "${value}" with 400 field.invalid in every format`, async () => {
        const { app, events } = createApp();
        for (const format of FORMATS) {
          const res = await send(app, '/impact/actions', format, { ActionId: '1', Amount: value }).expect(400);
          expect(res.text, format).to.equal(
            'field.invalid: field "amount" is not a plain decimal number such as 12.50',
          );
        }
        expect(events.action).to.deep.equal([]);
      });
    }

    it('keeps an unquoted JSON number exactly as written', async () => {
      const { app, events } = createApp();
      await request(app)
        .post('/impact/actions')
        .type('json')
        .send('{"ActionId":"1","Payout":1.10,"Amount":900719925474099.3}')
        .expect(200);
      expect(events.action[0]).to.include({ payout: '1.10', amount: '900719925474099.3' });
    });

    it('refuses a JSON array, object or boolean as money', async () => {
      const { app } = createApp();
      for (const value of ['[1]', '{"a":"1"}', 'true']) {
        const res = await request(app)
          .post('/impact/actions')
          .type('json')
          .send(`{"ActionId":"1","Payout":${value}}`)
          .expect(400);
        expect(errorCode(res.text), value).to.equal('field.invalid');
      }
    });
  });

  describe('currencies, statuses and identifiers', () => {
    it('upper-cases currencies and refuses what is not three letters', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/actions', 'query', { ActionId: '1', Currency: 'eur', OriginalCurrency: 'Usd' }).expect(
        200,
      );
      expect(events.action[0]).to.include({ currency: 'EUR', originalCurrency: 'USD' });
      for (const currency of ['EURO', 'E1R', '€', 'US']) {
        const res = await send(app, '/impact/actions', 'query', { ActionId: '1', Currency: currency }).expect(400);
        expect(errorCode(res.text)).to.equal('field.invalid');
      }
    });

    it('upper-cases the status and keeps values it does not know', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/actions', 'query', { ActionId: '1', Status: 'Approved' }).expect(200);
      await send(app, '/impact/actions', 'query', { ActionId: '2', State: 'over limit - budget' }).expect(200);
      expect(events.action.map((event) => event.status)).to.deep.equal(['APPROVED', 'OVER LIMIT - BUDGET']);
    });

    it('refuses identifiers and text with control or replacement characters', async () => {
      const { app, events } = createApp();
      const cases = [
        '?ActionId=1%0A2',
        '?ActionId=%E0%A4%A',
        '?ActionId=1&SubId1=a%0D%0Ab',
        '?ActionId=1&CampaignName=%FF',
        '?ActionId=1&SubId1=%1B%5B31m',
        '?ActionId=a%20b',
      ];
      for (const query of cases) {
        const res = await request(app).get(`/impact/actions${query}`).expect(400);
        expect(errorCode(res.text), query).to.equal('field.invalid');
      }
      expect(events.action).to.deep.equal([]);
    });
  });

  describe('dates', () => {
    it('parse ISO 8601 with an offset, including a "+" that arrived as a space', async () => {
      const { app, events } = createApp();
      await request(app).get('/impact/actions?ActionId=1&EventDate=2024-09-10T10:42:38+02:00').expect(200);
      await request(app).get('/impact/actions?ActionId=2&EventDate=2024-09-10T10:42:38.5Z').expect(200);
      expect(events.action.map((event) => event.eventDate?.toISOString())).to.deep.equal([
        '2024-09-10T08:42:38.000Z',
        '2024-09-10T10:42:38.500Z',
      ]);
    });

    it('that do not parse are absent with a warning, not a refusal', async () => {
      const { app, events } = createApp();
      for (const value of ['10/09/2024', '2024-02-30T00:00:00Z', '2024-09-10T10:42:38', 'soon']) {
        await send(app, '/impact/actions', 'json', { ActionId: value.replace(/\W/g, ''), EventDate: value }).expect(
          200,
        );
      }
      for (const event of events.action) {
        expect(event).to.not.have.property('eventDate');
        expect(event.warnings.map((warning) => warning.code)).to.deep.equal(['date.invalid']);
      }
    });
  });

  describe('an inquiry event', () => {
    it('carries the inquiry fields and the state "created" while unresolved', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/inquiries', 'xml', INQUIRY).expect(200);
      const [event] = events.inquiry;
      expect(event).to.deep.include({
        kind: 'inquiry',
        inquiryId: '4411',
        state: 'created',
        mediaPartnerInquiryId: 'mine-7',
        campaignId: '10306',
        actionId: '8882.1234.1234567',
        orderId: 'ORD-77',
        inquiryType: 'UNTRACKED',
        resolutionStatus: 'UNRESOLVED',
        inquiryNotes: 'Bought on 3 May.\nReceipt attached.',
        transactionAmount: '59.90',
        expectedPayout: '3.00',
        currency: 'USD',
      });
      expect(event?.inquiryDate?.toISOString()).to.equal('2024-05-20T06:30:00.000Z');
    });

    it('has the state "resolved" once a resolution status arrives, and takes Id as the inquiry id', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/inquiries', 'query', {
        Id: '5',
        ResolutionStatus: 'declined',
        RejectReason: 'Transaction cannot be traced',
        FinalPayout: '0.00',
      }).expect(200);
      await send(app, '/impact/inquiries', 'query', { Id: '6' }).expect(200);
      expect(events.inquiry[0]).to.include({
        inquiryId: '5',
        state: 'resolved',
        resolutionStatus: 'DECLINED',
        finalPayout: '0.00',
      });
      expect(events.inquiry[1]).to.include({ inquiryId: '6', state: 'created' });
    });

    it('is refused with 400 without an inquiry id', async () => {
      const { app, events } = createApp();
      const res = await send(app, '/impact/inquiries', 'json', { ActionId: '1' }).expect(400);
      expect(res.text).to.equal('field.missing: field "inquiryId" is missing or empty');
      expect(events.inquiry).to.deep.equal([]);
    });
  });

  describe('a catalog event', () => {
    it('carries campaignId and catalogId, the rest in fields', async () => {
      const { app, events } = createApp();
      await send(app, '/impact/catalog', 'json', { CampaignId: '1', catalog_id: '2', Sku: 'A' }).expect(200);
      expect(events.catalog[0]).to.include({ kind: 'catalog', campaignId: '1', catalogId: '2' });
      expect(events.catalog[0]?.fields).to.deep.equal({ campaignId: '1', catalogId: '2', sku: 'A' });
    });

    it('is refused with 400 when it holds no fields at all', async () => {
      const { app, events } = createApp();
      const res = await request(app).get('/impact/catalog').expect(400);
      expect(errorCode(res.text)).to.equal('field.missing');
      expect(events.catalog).to.deep.equal([]);
    });
  });

  it('caps the number of fields instead of cutting them silently', async () => {
    const { app, events } = createApp({ maxFields: 10 });
    const query = Array.from({ length: 11 }, (_, index) => `f${index}=1`).join('&');
    const res = await request(app).get(`/impact/actions?ActionId=1&${query}`).expect(400);
    expect(errorCode(res.text)).to.equal('fields.too_many');
    expect(events.action).to.deep.equal([]);
  });
});
