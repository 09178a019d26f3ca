import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import request from 'supertest';
import { createExampleApp, type ExampleApp, type ExampleOptions } from '../example-app/app';
import { formatCents, toCents } from '../example-app/ledger';
import { startServer } from './helpers/server';
import { createTestSchema, DATABASE_URL, requirePostgres, type TestSchema } from './helpers/services';

const CLI = path.resolve(__dirname, '../dist/cli/main.js');

function action(id: string, fields: Record<string, string>, route = 'actions') {
  return `/impact/${route}?${new URLSearchParams({ ActionId: id, Currency: 'USD', ...fields }).toString()}`;
}

interface Storage {
  readonly name: string;
  readonly before?: (context: Mocha.Context) => Promise<void>;
  /** Options that put the example on this storage. */
  readonly options: () => Promise<ExampleOptions>;
  readonly after?: () => Promise<void>;
}

const memory: Storage = { name: 'in memory', options: () => Promise.resolve({}) };

function postgres(): Storage {
  let schema: TestSchema | undefined;
  return {
    name: 'on PostgreSQL (DATABASE_URL set)',
    before: async (context) => requirePostgres(context),
    options: async () => {
      schema = await createTestSchema();
      return { databaseUrl: DATABASE_URL, schema: schema.name };
    },
    after: async () => schema?.drop(),
  };
}

for (const storage of [memory, postgres()]) {
  describe(`example app ${storage.name}`, function () {
    this.timeout(20_000);
    const opened: ExampleApp[] = [];
    before(async function () {
      await storage.before?.(this);
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((example) => example.close()));
      await storage.after?.();
    });

    async function open(options: ExampleOptions = {}): Promise<ExampleApp> {
      const example = await createExampleApp({ print: () => undefined, ...(await storage.options()), ...options });
      opened.push(example);
      return example;
    }

    it("shows `impact-postbacks check`'s test postbacks apart, crediting and recording nobody", async () => {
      const { app, ledger, log } = await open();
      const server = await startServer(app);
      try {
        const checked = await promisify(execFile)(process.execPath, [CLI, 'check', '--url', `${server.base}/impact`]);
        expect(checked.stdout).to.include('accepted');
      } finally {
        await server.close();
      }
      expect({
        balances: await ledger.balances(),
        inquiries: await ledger.inquiries(),
        test: log.filter((entry) => entry.status.startsWith('test postback (check)')).length,
        others: log.filter((entry) => !entry.status.startsWith('test postback') && !entry.kind.startsWith('catalog')),
      }).to.deep.equal({ balances: [], inquiries: [], test: 12, others: [] });
    });

    it('is filled by `npm run example:send` on the port PORT names', async () => {
      const { app, log } = await open();
      const server = await startServer(app);
      try {
        const port = new URL(server.base).port;
        await promisify(execFile)('npm', ['run', '-s', 'example:send'], {
          cwd: path.resolve(__dirname, '..'),
          env: { ...process.env, PORT: port },
        });
      } finally {
        await server.close();
      }
      expect(log.length).to.be.above(5);
    });

    it('credits the difference each postback makes, ignores repeats, and credits nothing for a late PENDING', async () => {
      const lines: string[] = [];
      const { app, ledger, log } = await open({ print: (line) => lines.push(line) });
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
      expect(await ledger.balances()).to.deep.equal([
        { user: 'alice', pendingCents: 1250, clearedCents: 0, actions: 1 },
        { user: 'bob', pendingCents: 1500, clearedCents: 0, actions: 1 },
      ]);
      await request(app)
        .get(action('2', { SubId1: 'bob', Payout: '0.00', DeltaPayout: '-15.00', Status: 'REVERSED' }))
        .expect(200);
      await request(app)
        .get(action('1', { SubId1: 'alice', Payout: '12.50', Status: 'APPROVED' }, 'clearing'))
        .expect(200);
      // impact.com retried an older modification after the reversal: it must not credit bob again.
      await request(app)
        .get(action('2', { SubId1: 'bob', Payout: '18.00', DeltaPayout: '-2.00', Status: 'PENDING' }))
        .expect(200);
      expect(await ledger.balances()).to.deep.equal([
        { user: 'alice', pendingCents: 0, clearedCents: 1250, actions: 1 },
        { user: 'bob', pendingCents: 0, clearedCents: 0, actions: 1 },
      ]);
      expect(log[0]?.status).to.equal('stale (already REVERSED)');
      expect(log.map((entry) => entry.status)).to.include('duplicate');
      expect(log.find((entry) => entry.kind === 'action (clearing)')?.summary).to.equal(
        'action 1 clearing APPROVED payout 12.50 USD for alice',
      );
      expect(lines.filter((line) => / stale /.test(line))).to.have.length(1);
      const page = await request(app).get('/').expect(200).expect('Content-Type', /html/);
      expect(page.text).to.include(
        '<tr data-user="alice"><td>alice</td><td class="pending">0.00</td><td class="cleared">12.50</td>',
      );
      expect(page.text).to.include('http-equiv="refresh"');
    });

    it('exposes Prometheus metrics at /metrics: answers by route and outcome, and their durations', async () => {
      const { app } = await open();
      const url = action('m1', { SubId1: 'alice', Payout: '1.00', Status: 'PENDING' });
      await request(app).get(url).expect(200);
      await request(app).get(url).expect(200);
      await request(app).get('/impact/actions?Payout=1.00').expect(400);
      const res = await request(app).get('/metrics').expect(200);
      expect(res.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4/);
      const metrics = res.text;
      expect(metrics).to.include('impact_postbacks_requests_total{route="actions",outcome="delivered"} 1');
      expect(metrics).to.include('impact_postbacks_requests_total{route="actions",outcome="duplicate"} 1');
      expect(metrics).to.include('impact_postbacks_requests_total{route="actions",outcome="rejected"} 1');
      expect(metrics).to.include('impact_postbacks_request_duration_ms_count{route="actions"} 3');
      expect(metrics).to.match(/impact_postbacks_request_duration_ms_bucket\{le="10000",route="actions"\} 3/);
    });

    it('tracks inquiries from created to resolved', async () => {
      const { app, ledger } = await open();
      await request(app).get('/impact/inquiries?InquiryId=7&ResolutionStatus=UNRESOLVED').expect(200);
      await request(app).get('/impact/inquiries?InquiryId=7&ResolutionStatus=VALID&FinalPayout=3.00').expect(200);
      expect((await ledger.inquiries()).map((inquiry) => [inquiry.inquiryId, inquiry.state])).to.deep.equal([
        ['7', 'resolved'],
      ]);
    });

    it('refuses senders outside its allow-list and says so in its log', async () => {
      const lines: string[] = [];
      const { app } = await open({ allowedIps: ['192.0.2.1'], print: (line) => lines.push(line) });
      await request(app).get('/impact/actions?ActionId=1').expect(403);
      expect(lines).to.deep.equal(['rejected 403 ip.forbidden from 127.0.0.1: this address may not send postbacks']);
    });

    it('escapes what senders write before showing it', async () => {
      const { app } = await open();
      await request(app)
        .get(action('9', { SubId1: '<script>alert(1)</script>', Payout: '1.00' }))
        .expect(200);
      const page = await request(app).get('/').expect(200);
      expect(page.text).to.not.include('<script>alert(1)</script>');
      expect(page.text).to.include('&#60;script&#62;');
    });
  });
}

describe('example app ledger arithmetic', () => {
  it('keeps money exact in cents', () => {
    expect(['12.50', '-5.00', '0.1', '1000', '-0.05'].map(toCents)).to.deep.equal([1250, -500, 10, 100000, -5]);
    expect([1250, -500, 5, 0].map(formatCents)).to.deep.equal(['12.50', '-5.00', '0.05', '0.00']);
  });
});
