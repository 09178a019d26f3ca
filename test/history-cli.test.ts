import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import request from 'supertest';
import { PostgresStore, SqliteStore, type PostbackStore } from '../lib';
import { createApp } from './helpers/create-app';
import { createTestSchema, DATABASE_URL, requirePostgres, type TestSchema } from './helpers/services';

const BIN = path.resolve(__dirname, '../dist/cli/main.js');

async function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    // Without DATABASE_URL: the store is only the one the arguments name.
    const { DATABASE_URL: _ignored, ...env } = process.env;
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Postbacks of two actions, one refused, through a router with history on, then closed. */
async function fill(store: PostbackStore<unknown>): Promise<void> {
  const app = createApp<unknown>({ store, history: true });
  const send = (fields: Record<string, string>) => request(app.app).get('/impact/actions').query(fields);
  await send({ ActionId: '9100.1', Status: 'PENDING', Payout: '5.00', SubId1: 'member-1' }).expect(200);
  await send({ ActionId: '9100.1', Status: 'APPROVED', Payout: '5.00', SubId1: 'member-1' }).expect(200);
  await send({ ActionId: '9100.2', Status: 'PENDING', Payout: 'lots', SubId1: 'member-2' }).expect(400);
  await app.postbacks.close();
}

describe('impact-postbacks history', () => {
  describe('with a SqliteStore file', () => {
    let dir: string;
    let file: string;
    before(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'impact-history-cli-'));
      file = path.join(dir, 'store.db');
      await fill(new SqliteStore({ path: file }));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('prints the entries newest first as a table', async () => {
      const { code, stdout } = await cli(['history', '--sqlite', file]);
      expect(code).to.equal(0);
      const lines = stdout.trim().split('\n');
      expect(lines[0]).to.match(/^id received\s+trigger\s+route\s+outcome\s+st code\s+action subId1$/);
      expect(lines.slice(1, -1).map((text) => text.trim().split(/\s+/).slice(2))).to.deep.equal([
        ['postback', 'actions', 'rejected', '400', 'field.invalid', '9100.2', 'member-2'],
        ['postback', 'actions', 'delivered', '200', '-', '9100.1', 'member-1'],
        ['postback', 'actions', 'delivered', '200', '-', '9100.1', 'member-1'],
      ]);
      expect(lines.at(-1)).to.equal('3 entries');
    });

    it('filters by action, subId1, outcome and time, and prints JSON lines with the fields', async () => {
      const byAction = await cli(['history', '--sqlite', file, '--action', '9100.1', '--json']);
      expect(byAction.code).to.equal(0);
      const entries = byAction.stdout
        .trim()
        .split('\n')
        .map((text) => JSON.parse(text) as { actionId: string; fields: Record<string, string>; outcome: string });
      expect(entries.map((entry) => [entry.actionId, entry.fields['Status']])).to.deep.equal([
        ['9100.1', 'APPROVED'],
        ['9100.1', 'PENDING'],
      ]);
      const bySubId = await cli([
        'history',
        '--sqlite',
        file,
        '--sub-id1',
        'member-2',
        '--outcome',
        'rejected',
        '--json',
      ]);
      expect(bySubId.stdout.trim().split('\n')).to.have.length(1);
      const later = await cli(['history', '--sqlite', file, '--since', '2999-01-01']);
      expect(later.stdout.trim().split('\n').at(-1)).to.equal('0 entries');
    });

    it('refuses a wrong flag value with exit 2, naming the flag', async () => {
      for (const [args, message] of [
        [['--outcome', 'lost'], /--outcome must be one of delivered/],
        [['--since', 'yesterday'], /--since must be a date/],
        [['--limit', '0'], /--limit must be a whole number from 1 to 1000/],
        [['--action', ''], /--action is empty/],
      ] as const) {
        const { code, stderr } = await cli(['history', '--sqlite', file, ...args]);
        expect(code, args.join(' ')).to.equal(2);
        expect(stderr).to.match(message);
      }
      const neither = await cli(['history']);
      expect(neither.code).to.equal(2);
      expect(neither.stderr).to.match(/--database-url <url> \(or DATABASE_URL\) or --sqlite <file>/);
    });
  });

  describe('with a PostgresStore database', () => {
    let schema: TestSchema;
    before(async function () {
      await requirePostgres(this);
      schema = await createTestSchema();
      await fill(new PostgresStore({ connectionString: DATABASE_URL, schema: schema.name, tablePrefix: 'cli_' }));
    });
    after(async () => {
      await schema.drop();
    });

    it('reads the same entries from the database', async () => {
      const args = ['--database-url', DATABASE_URL, '--schema', schema.name, '--table-prefix', 'cli_', '--json'];
      const { code, stdout, stderr } = await cli(['history', ...args, '--action', '9100.1']);
      expect(stderr).to.equal('');
      expect(code).to.equal(0);
      const entries = stdout
        .trim()
        .split('\n')
        .map((text) => JSON.parse(text) as { fields: Record<string, string>; outcome: string; status: number });
      expect(entries.map((entry) => [entry.outcome, entry.status, entry.fields['Status']])).to.deep.equal([
        ['delivered', 200, 'APPROVED'],
        ['delivered', 200, 'PENDING'],
      ]);
    });
  });
});
