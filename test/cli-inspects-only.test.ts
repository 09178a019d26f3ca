import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import pg from 'pg';
import { DATABASE_URL, requirePostgres } from './helpers/services';
import { useTempDir } from './helpers/temp-dir';

const BIN = path.resolve(__dirname, '../dist/cli/main.js');

/** Runs the built binary; resolves with its output and exit code, whatever the code. */
async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], {
      env: { ...process.env, IMPACT_AUTH_TOKEN: 'token' },
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failure = error as { stdout: string; stderr: string; code: number };
    return { stdout: failure.stdout, stderr: failure.stderr, code: failure.code };
  }
}

const RECONCILE = ['reconcile', '--account-sid', 'IRtest', '--since', '2026-11-01', '--base-url', 'http://127.0.0.1:9'];

describe('commands that look into a store create nothing where it is missing', function () {
  this.timeout(30_000);
  const dir = useTempDir('impact-cli-inspect-');

  for (const args of [['inbox', 'stats'], ['inbox', 'list'], ['inbox', 'retry', '--dead'], RECONCILE]) {
    it(`${args.slice(0, 2).join(' ')} --sqlite on a file that is not there: exit 1, naming it, and no file made`, async () => {
      const file = path.join(dir(), 'typo.db');
      const { code, stdout, stderr } = await cli(...args, '--sqlite', file);
      expect({ code, stdout, stderr, made: existsSync(file) }).to.deep.equal({
        code: 1,
        stdout: '',
        stderr: `impact-postbacks: SqliteStore: no database at ${file} (unable to open database file); a router's SqliteStore creates it\n`,
        made: false,
      });
    });
  }

  it("inbox stats --sqlite on a database that is not a store's: exit 1, naming the tables, and none made", async () => {
    const file = path.join(dir(), 'other.db');
    const other = new Database(file);
    other.exec('CREATE TABLE shop (id INTEGER PRIMARY KEY)');
    other.close();
    const { code, stderr } = await cli('inbox', 'stats', '--sqlite', file);
    const reader = new Database(file, { readonly: true });
    const tables = (
      reader.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
    ).map((row) => row.name);
    reader.close();
    expect({ code, stderr, tables }).to.deep.equal({
      code: 1,
      stderr: `impact-postbacks: SqliteStore: ${file} has no table postback_keys, postback_journal, postback_holds, postback_inbox: it is not a store's file, or no router's SqliteStore of this version has opened it yet\n`,
      tables: ['shop'],
    });
  });

  describe('PostgreSQL', () => {
    const schema = `nosuch_${process.pid}_${Date.now()}`;
    let admin: pg.Pool | undefined;
    before(async function () {
      await requirePostgres(this);
      admin = new pg.Pool({ connectionString: DATABASE_URL });
    });
    after(async () => {
      await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin?.end();
    });

    for (const args of [['inbox', 'stats'], ['inbox', 'list'], ['inbox', 'retry', '--dead'], RECONCILE]) {
      it(`${args.slice(0, 2).join(' ')} --schema of a schema that is not there: exit 1, naming what to run, and nothing made`, async () => {
        const { code, stderr } = await cli(...args, '--database-url', DATABASE_URL, '--schema', schema);
        const made = await (admin as pg.Pool).query(
          `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = $1)::int AS schemas,
                  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)::int AS tables`,
          [schema],
        );
        const command = args[0] === 'reconcile' ? 'reconcile' : `inbox ${args[1] ?? ''}`;
        expect({ code, stderr, made: made.rows[0] as unknown }).to.deep.equal({
          code: 1,
          stderr: `impact-postbacks: ${command} failed: PostgresStore: the database has no ${schema}.impact_postbacks_keys, ${schema}.impact_postbacks_journal, ${schema}.impact_postbacks_inbox, ${schema}.impact_postbacks_inbox_attempts, ${schema}.impact_postbacks_begin_v5, ${schema}.impact_postbacks_inbox_add_v5, ${schema}.impact_postbacks_inbox_next_v5; create them with: impact-postbacks migrate --schema ${schema}\n`,
          made: { schemas: 0, tables: 0 },
        });
      });
    }
  });
});
