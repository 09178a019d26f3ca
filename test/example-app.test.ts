import { expect } from 'chai';
import request from 'supertest';
import { createExampleApp } from '../example-app/app';

describe('example app', () => {
  it('logs an action postback and lists it on its page', async () => {
    const lines: string[] = [];
    const { app, log } = createExampleApp({ print: (line) => lines.push(line) });
    await request(app)
      .get('/impact/actions?ActionId=1.2.3&Payout=5.00&Currency=usd&SubId1=alice&Status=pending')
      .expect(200, 'OK');
    await request(app)
      .get('/impact/actions?ActionId=1.2.3&Payout=5.00&Currency=usd&SubId1=alice&Status=pending')
      .expect(200, 'OK');
    expect(log.map((entry) => entry.summary)).to.deep.equal([
      'action 1.2.3 lifecycle PENDING payout 5.00 USD for alice',
    ]);
    expect(lines[1]).to.match(/^duplicate of actions:/);
    const page = await request(app).get('/').expect(200);
    expect((page.body as { postbacks: unknown[] }).postbacks).to.have.length(1);
  });

  it('refuses senders outside its allow-list and says so in its log', async () => {
    const lines: string[] = [];
    const { app } = createExampleApp({ allowedIps: ['192.0.2.1'], print: (line) => lines.push(line) });
    await request(app).get('/impact/actions?ActionId=1').expect(403);
    expect(lines).to.deep.equal(['rejected 403 ip.forbidden from 127.0.0.1: this address may not send postbacks']);
  });
});
