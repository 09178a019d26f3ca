import { expect } from 'chai';
import request from 'supertest';
import { createExampleApp } from '../example-app/app';
import { formatCents, toCents } from '../example-app/ledger';

function action(id: string, fields: Record<string, string>) {
  return `/impact/actions?${new URLSearchParams({ ActionId: id, Currency: 'USD', ...fields }).toString()}`;
}

describe('example app', () => {
  it('credits on a tracked action, adjusts on a modification, debits on a reversal, and ignores repeats', async () => {
    const lines: string[] = [];
    const { app, ledger, log } = createExampleApp({ print: (line) => lines.push(line) });
    await request(app)
      .get(action('1', { SubId1: 'alice', Payout: '12.50', Status: 'PENDING' }))
      .expect(200, 'OK');
    await request(app)
      .get(action('2', { SubId1: 'bob', Payout: '20.00', Status: 'PENDING' }))
      .expect(200);
    await request(app)
      .get(action('2', { SubId1: 'bob', Payout: '15.00', DeltaPayout: '-5.00', Status: 'PENDING' }))
      .expect(200);
    await request(app)
      .get(action('1', { SubId1: 'alice', Payout: '12.50', Status: 'PENDING' }))
      .expect(200);
    expect(ledger.balances()).to.deep.equal([
      { user: 'alice', pendingCents: 1250, clearedCents: 0, actions: 1 },
      { user: 'bob', pendingCents: 1500, clearedCents: 0, actions: 1 },
    ]);
    await request(app)
      .get(action('2', { SubId1: 'bob', Payout: '0.00', DeltaPayout: '-15.00', Status: 'REVERSED' }))
      .expect(200);
    await request(app)
      .get(
        `/impact/clearing?${new URLSearchParams({ ActionId: '1', SubId1: 'alice', Payout: '12.50', Status: 'APPROVED' }).toString()}`,
      )
      .expect(200);
    expect(ledger.balances()).to.deep.equal([
      { user: 'alice', pendingCents: 0, clearedCents: 1250, actions: 1 },
      { user: 'bob', pendingCents: 0, clearedCents: 0, actions: 1 },
    ]);
    expect(log[0]?.kind).to.equal('action (clearing)');
    expect(log.map((entry) => entry.status)).to.include('duplicate');
    const page = await request(app).get('/').expect(200).expect('Content-Type', /html/);
    expect(page.text).to.include(
      '<tr data-user="alice"><td>alice</td><td class="pending">0.00</td><td class="cleared">12.50</td>',
    );
    expect(page.text).to.include('http-equiv="refresh"');
  });

  it('tracks inquiries from created to resolved', async () => {
    const { app, ledger } = createExampleApp({ print: () => undefined });
    await request(app).get('/impact/inquiries?InquiryId=7&ResolutionStatus=UNRESOLVED').expect(200);
    await request(app).get('/impact/inquiries?InquiryId=7&ResolutionStatus=VALID&FinalPayout=3.00').expect(200);
    expect(ledger.allInquiries().map((inquiry) => [inquiry.inquiryId, inquiry.state])).to.deep.equal([
      ['7', 'resolved'],
    ]);
  });

  it('refuses senders outside its allow-list and says so in its log', async () => {
    const lines: string[] = [];
    const { app } = createExampleApp({ allowedIps: ['192.0.2.1'], print: (line) => lines.push(line) });
    await request(app).get('/impact/actions?ActionId=1').expect(403);
    expect(lines).to.deep.equal(['rejected 403 ip.forbidden from 127.0.0.1: this address may not send postbacks']);
  });

  it('escapes what senders write before showing it', async () => {
    const { app } = createExampleApp({ print: () => undefined });
    await request(app)
      .get(action('9', { SubId1: '<script>alert(1)</script>', Payout: '1.00' }))
      .expect(200);
    const page = await request(app).get('/').expect(200);
    expect(page.text).to.not.include('<script>alert(1)</script>');
    expect(page.text).to.include('&#60;script&#62;');
  });

  it('keeps money exact in cents', () => {
    expect(['12.50', '-5.00', '0.1', '1000', '-0.05'].map(toCents)).to.deep.equal([1250, -500, 10, 100000, -5]);
    expect([1250, -500, 5, 0].map(formatCents)).to.deep.equal(['12.50', '-5.00', '0.05', '0.00']);
  });
});
