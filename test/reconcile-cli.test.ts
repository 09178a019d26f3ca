import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import request from 'supertest';
import { PostgresStore, SqliteStore } from '../lib';
import { createApp } from './helpers/create-app';
import { apiAction, FakeActionsApi } from './helpers/fake-actions-api';
import { DATABASE_URL, useTestSchema } from './helpers/services';

const BIN = path.resolve(__dirname, '../dist/cli/main.js');
const SID = 'IRcli';
const TOKEN = 'cli-sEcReT-token-9876543210';

/** Runs the built binary with IMPACT_AUTH_TOKEN as given; resolves whatever the exit code. */
async function reconcile(
  args: readonly string[],
  token = TOKEN,
): Promise<{ stdout: string; stderr: string; code: number }> {
  const { DATABASE_URL: _url, ...inherited } = process.env;
  const env = { ...inherited, IMPACT_AUTH_TOKEN: token };
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, 'reconcile', ...args], { env });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failure = error as { stdout: string; stderr: string; code: number };
    return { stdout: failure.stdout, stderr: failure.stderr, code: failure.code };
  }
}

describe('impact-postbacks reconcile', function () {
  this.timeout(30_000);
  let api: FakeActionsApi;
  let dir: string;

  beforeEach(async () => {
    api = new FakeActionsApi(SID, TOKEN);
    await api.start();
    dir = await mkdtemp(path.join(tmpdir(), 'impact-reconcile-cli-'));
  });
  afterEach(async () => {
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const since = new Date(Date.now() - 3 * 24 * 60 * 60 * 1000).toISOString().slice(0, 10);

  it('prints what a SQLite journal lacks or has differently, delivers nothing, and exits 1; 0 once all agree', async () => {
    const file = path.join(dir, 'store.db');
    const app = createApp({ store: new SqliteStore({ path: file }) });
    for (const [id, status, payout] of [
      ['1000.1.1', 'PENDING', '5.00'],
      ['1000.1.2', 'APPROVED', '2.00'],
    ] as const) {
      await request(app.app)
        .get('/impact/actions')
        .query({ ActionId: id, Status: status, Payout: payout, Amount: '100.00', Currency: 'USD' })
        .expect(200);
    }
    await app.postbacks.close();
    api.put(apiAction('1000.1.1', 'REVERSED', '0.00'));
    api.put(apiAction('1000.1.2', 'APPROVED', '2.00'));
    api.put(apiAction('1000.1.3', 'APPROVED', '3.00'));
    const args = ['--account-sid', SID, '--since', since, '--base-url', api.baseUrl, '--sqlite', file];

    const first = await reconcile(args);
    expect(first.code).to.equal(1);
    expect(first.stdout).to.include('changed  1000.1.1  PENDING 5.00 USD → REVERSED 0.00 USD');
    expect(first.stdout).to.include('missing  1000.1.3  APPROVED 3.00 USD');
    expect(first.stdout).not.to.include('1000.1.2');
    expect(first.stdout).to.include('checked 3: 1 missing, 1 changed, 0 stale, 1 unchanged (1 pages, 1 requests)');
    expect(first.stdout + first.stderr).not.to.include(TOKEN);

    // Nothing was delivered: the same differences, now as JSON.
    const json = await reconcile([...args, '--json']);
    expect(json.code).to.equal(1);
    const report = JSON.parse(json.stdout) as { missing: number; changed: number; actions: { kind: string }[] };
    expect(report).to.include({ missing: 1, changed: 1 });
    expect(report.actions.map((action) => action.kind)).to.deep.equal(['missing', 'changed']);

    // A router reconciles; then the journal and the API agree.
    const router = createApp({ store: new SqliteStore({ path: file }) });
    expect(
      await router.postbacks.reconcile({
        accountSid: SID,
        authToken: TOKEN,
        since: new Date(since),
        baseUrl: api.baseUrl,
      }),
    ).to.include({ delivered: 2 });
    await router.postbacks.close();
    const agreed = await reconcile(args);
    expect(agreed.code).to.equal(0);
    expect(agreed.stdout.trim()).to.equal(
      'checked 3: 0 missing, 0 changed, 0 stale, 3 unchanged (1 pages, 1 requests)',
    );
  });

  it('exits 2 on usage errors: no token in the environment, a token on the command line, a bad date, no store', async () => {
    const store = ['--sqlite', path.join(dir, 'x.db'), '--base-url', api.baseUrl];
    const noToken = await reconcile(['--account-sid', SID, '--since', since, ...store], '');
    expect(noToken.code).to.equal(2);
    expect(noToken.stderr).to.include('IMPACT_AUTH_TOKEN');
    const inArgv = await reconcile(['--account-sid', SID, '--since', since, '--auth-token', TOKEN, ...store]);
    expect(inArgv.code).to.equal(2);
    expect(inArgv.stderr).to.match(/Unknown option '--auth-token'/);
    const badDate = await reconcile(['--account-sid', SID, '--since', 'yesterday', ...store]);
    expect(badDate.code).to.equal(2);
    expect(badDate.stderr).to.include('--since must be a date');
    const noStore = await reconcile(['--account-sid', SID, '--since', since, '--base-url', api.baseUrl]);
    expect(noStore.code).to.equal(2);
    expect(noStore.stderr).to.include('--database-url <url> (or DATABASE_URL) or --sqlite <file>');
    expect(api.requests).to.have.length(0);
  });

  it('exits 1 with the API failure named, never the token', async () => {
    api.failPage(1, 503);
    // A router's store, made before: the command creates none.
    new SqliteStore({ path: path.join(dir, 'y.db') }).close();
    const failed = await reconcile([
      '--account-sid',
      SID,
      '--since',
      since,
      '--base-url',
      api.baseUrl,
      '--sqlite',
      path.join(dir, 'y.db'),
    ]);
    expect(failed.code).to.equal(1);
    expect(failed.stderr).to.include('reconcile.http');
    expect(failed.stderr).to.include('answered 503');
    expect(failed.stdout + failed.stderr).not.to.include(TOKEN);
  });

  describe('on PostgresStore', function () {
    const testSchema = useTestSchema();

    it('reads the journal of a PostgreSQL database', async () => {
      const app = createApp({
        store: new PostgresStore({ connectionString: DATABASE_URL, schema: testSchema().name }),
      });
      await request(app.app)
        .get('/impact/actions')
        .query({ ActionId: '1000.2.1', Status: 'APPROVED', Payout: '1.00', Amount: '100.00', Currency: 'USD' })
        .expect(200);
      await app.postbacks.close();
      api.put(apiAction('1000.2.1', 'APPROVED', '1.00'));
      api.put(apiAction('1000.2.2', 'PENDING', '2.00'));
      const { code, stdout } = await reconcile([
        '--account-sid',
        SID,
        '--since',
        since,
        '--base-url',
        api.baseUrl,
        '--database-url',
        DATABASE_URL,
        '--schema',
        testSchema().name,
      ]);
      expect(code).to.equal(1);
      expect(stdout).to.include('missing  1000.2.2  PENDING 2.00 USD');
      expect(stdout).to.include('1 missing, 0 changed, 0 stale, 1 unchanged');
    });
  });
});
