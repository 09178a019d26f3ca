import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { expect } from 'chai';
import { PostgresStore } from '../lib';
import { killAgainAndAgain, startChildServer, type ChildServer } from './helpers/child-server';
import { createTestSchema, DATABASE_URL, requirePostgres, type TestSchema } from './helpers/services';
import { useTempDir } from './helpers/temp-dir';

type Fields = Readonly<Record<string, string>>;

/** One GET postback; resolves with the status, or 0 if the connection died. */
function deliver(port: number, fields: Fields): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: `/impact/actions?${new URLSearchParams(fields).toString()}`, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
  });
}

async function until(check: () => Promise<boolean>, ms: number): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`not within ${ms} ms`);
    await sleep(50);
  }
  return Date.now() - started;
}

/**
 * Kills `first` once its listener is under way, and each process started after it likewise,
 * until one of them gives the row up (`DEAD`) or starts its listener a third time.
 */
async function diesEachTime(first: ChildServer, restart: () => Promise<ChildServer>): Promise<string> {
  await first.waitFor('LISTENER_WROTE');
  await first.kill();
  const second = await restart();
  await second.waitFor('LISTENER_WROTE');
  await second.kill();
  const third = await restart();
  const line = await Promise.race([third.waitFor('DEAD '), third.waitFor('LISTENER_WROTE')]);
  return line.split(' ')[0] ?? '';
}

interface LedgerRow {
  readonly action_id: string;
  readonly status: string | null;
  readonly payout: string | null;
  readonly previous_status: string | null;
  readonly previous_payout: string | null;
  readonly key: string;
}

describe('crash with inbox delivery: SIGKILL while a stored postback is delivered', function () {
  this.timeout(120_000);
  const servers: ChildServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.kill()));
  });

  async function start(env: Record<string, string>): Promise<ChildServer> {
    const server = await startChildServer(env, 'inbox-server');
    servers.push(server);
    return server;
  }

  describe('on PostgreSQL', () => {
    let schema: TestSchema;
    before(async function () {
      await requirePostgres(this);
    });
    beforeEach(async () => {
      schema = await createTestSchema();
      await schema.pool.query(`CREATE TABLE "${schema.name}".ledger (
        id serial PRIMARY KEY, action_id text NOT NULL, status text, payout numeric, previous_status text,
        previous_payout numeric, key text NOT NULL, pid integer NOT NULL, received_at timestamptz NOT NULL)`);
    });
    afterEach(async () => schema.drop());

    const env = (): Record<string, string> => ({ STORE: 'postgres', DATABASE_URL, PG_SCHEMA: schema.name });
    const count = async (sql: string): Promise<number> =>
      Number(
        (
          (await schema.pool.query(sql.replaceAll('$schema', `"${schema.name}"`))).rows[0] as
            { count: string } | undefined
        )?.count,
      );

    it('delivers it exactly once, from the process started after the kill, its listener writing through ctx.transaction', async () => {
      for (let index = 0; index < 3; index += 1) {
        const doomed = await start({ ...env(), HANG: 'after-write' });
        expect(await deliver(doomed.port, { ActionId: `11.${index}`, Status: 'PENDING', Payout: '4.00' })).to.equal(
          200,
        );
        await doomed.waitFor('LISTENER_WROTE');
        await doomed.kill();
        const started = Date.now();
        const next = await start(env());
        await until(
          async () =>
            (await count(`SELECT count(*) FROM $schema.impact_postbacks_inbox WHERE status = 'delivered'`)) ===
            index + 1,
          30_000,
        );
        console.log(`      row ${index}: delivered ${Date.now() - started} ms after the kill, the restart included`);
        await next.kill();
      }
      const ledger = (await schema.pool.query(`SELECT action_id FROM "${schema.name}".ledger ORDER BY id`)).rows;
      expect(ledger).to.deep.equal([{ action_id: '11.0' }, { action_id: '11.1' }, { action_id: '11.2' }]);
    });

    it('a row the process dies delivering every time is dead after maxAttempts, its listener run that often', async () => {
      const processEnv = { ...env(), HANG: 'after-write', MAX_ATTEMPTS: '2' };
      const first = await start(processEnv);
      expect(await deliver(first.port, { ActionId: '14.1', Status: 'PENDING', Payout: '4.00' })).to.equal(200);
      const ended = await diesEachTime(first, () => start(processEnv));
      const store = new PostgresStore({ connectionString: DATABASE_URL, schema: schema.name, create: false });
      try {
        const rows = await store.inbox.list();
        expect({ ended, rows: rows.map(({ status, attempts }) => ({ status, attempts })) }).to.deep.equal({
          ended: 'DEAD',
          rows: [{ status: 'dead', attempts: 2 }],
        });
      } finally {
        await store.close();
      }
    });

    it('two processes, 1,000 postbacks of lifecycle sequences, one process killed again and again: each delivered once, in arrival order per action, none left', async () => {
      // 250 actions: PENDING, a modification, then APPROVED or REVERSED, each sent after the one
      // before it was answered; a copy of one of them (impact.com's retry) follows it. One
      // postback in five fails its first delivery in each process: its row is retried while
      // the later ones of its action have arrived and must wait.
      const sequences: Fields[][] = [];
      for (let action = 0; action < 250; action += 1) {
        const tracked = { ActionId: `12.${action}`, Status: 'PENDING', Payout: '10.00' };
        const modified = { ...tracked, Payout: '8.00' };
        const final =
          action % 2 === 0 ? { ...modified, Status: 'APPROVED' } : { ...modified, Status: 'REVERSED', Payout: '0.00' };
        const sequence = [tracked, modified, final];
        sequence.splice(1 + (action % 3), 0, sequence[action % 3] ?? tracked);
        sequences.push(sequence);
      }
      const processEnv = { ...env(), LISTENER_DELAY_MS: '5', FAIL_FIRST: '5', BACKOFF_MS: '100' };
      const steady = await start(processEnv);
      const killing = killAgainAndAgain(
        await start(processEnv),
        () => start(processEnv),
        () => 250,
      );
      let requests = 0;
      const queue = [...sequences];
      await Promise.all(
        Array.from({ length: 20 }, async (_, sender) => {
          for (let sequence = queue.shift(); sequence !== undefined; sequence = queue.shift()) {
            for (const fields of sequence) {
              for (let attempt = 0; ; attempt += 1) {
                requests += 1;
                const target = (sender + attempt) % 2 === 0 || killing.victim === null ? steady : killing.victim;
                if ((await deliver(target.port, fields)) === 200) break;
                await sleep(50);
              }
              // Paced, so that the sending spans several kills and restarts.
              await sleep(60);
            }
          }
        }),
      );
      const kills = await killing.stop();
      const waited = await until(
        async () =>
          (await count(`SELECT count(*) FROM $schema.impact_postbacks_inbox WHERE status <> 'delivered'`)) === 0,
        60_000,
      );
      const ledger = (await schema.pool.query(`SELECT * FROM "${schema.name}".ledger ORDER BY id`)).rows as LedgerRow[];
      const rows = await count(`SELECT count(*) FROM $schema.impact_postbacks_inbox`);
      console.log(
        `      two processes: 1000 postbacks, ${requests} requests, ${kills} kills, ${rows} inbox rows, ${ledger.length} ledger rows; last delivery ${waited} ms after the last answer`,
      );
      expect(kills).to.be.at.least(3);
      // The 250 copies were answered as duplicates and stored no row.
      expect(rows).to.equal(750);
      expect(ledger).to.have.length(750);
      expect(new Set(ledger.map((row) => row.key)).size).to.equal(750);
      for (let action = 0; action < 250; action += 1) {
        const chain = ledger.filter((row) => row.action_id === `12.${action}`);
        expect(
          chain.map((row) => [
            row.status,
            Number(row.payout),
            row.previous_status,
            row.previous_payout === null ? null : Number(row.previous_payout),
          ]),
          `12.${action}`,
        ).to.deep.equal([
          ['PENDING', 10, null, null],
          ['PENDING', 8, 'PENDING', 10],
          action % 2 === 0 ? ['APPROVED', 8, 'PENDING', 8] : ['REVERSED', 0, 'PENDING', 8],
        ]);
      }
    });
  });

  describe('on SQLite', () => {
    const dir = useTempDir('impact-inbox-crash-');

    it('a row the process dies delivering every time is dead after maxAttempts, its listener run that often', async () => {
      const env = {
        STORE: `sqlite:${path.join(dir(), 'inbox.db')}`,
        LEDGER_DB: path.join(dir(), 'ledger.db'),
        INBOX_LEASE_MS: '1000',
        HANG: 'after-write',
        MAX_ATTEMPTS: '2',
      };
      const first = await start(env);
      expect(await deliver(first.port, { ActionId: '14.2', Status: 'PENDING', Payout: '4.00' })).to.equal(200);
      const ended = await diesEachTime(first, () => start(env));
      const ledger = new Database(env.LEDGER_DB, { readonly: true });
      const inbox = new Database(env.STORE.slice('sqlite:'.length), { readonly: true });
      try {
        expect({
          ended,
          calls: (ledger.prepare('SELECT count(*) AS count FROM deliveries').get() as { count: number }).count,
          rows: inbox.prepare('SELECT status, attempts FROM postback_inbox').all(),
        }).to.deep.equal({ ended: 'DEAD', calls: 2, rows: [{ status: 'dead', attempts: 2 }] });
      } finally {
        ledger.close();
        inbox.close();
      }
    });

    it("delivers it again once the dead process's lease lapses; an effect idempotent on meta.key happens once", async () => {
      const env = {
        STORE: `sqlite:${path.join(dir(), 'inbox.db')}`,
        LEDGER_DB: path.join(dir(), 'ledger.db'),
        INBOX_LEASE_MS: '2000',
      };
      const doomed = await start({ ...env, HANG: 'after-write' });
      expect(await deliver(doomed.port, { ActionId: '13.1', Status: 'PENDING', Payout: '4.00' })).to.equal(200);
      await doomed.waitFor('LISTENER_WROTE');
      await doomed.kill();
      const killedAt = Date.now();
      await start(env);
      const ledger = new Database(env.LEDGER_DB, { readonly: true });
      try {
        const calls = (): number =>
          (ledger.prepare('SELECT count(*) AS count FROM deliveries').get() as { count: number }).count;
        await until(() => Promise.resolve(calls() === 2), 30_000);
        const after = Date.now() - killedAt;
        console.log(`      delivered again ${after} ms after the kill (lease 2,000 ms)`);
        expect(after).to.be.below(2000 + 5000);
        expect((ledger.prepare('SELECT count(*) AS count FROM ledger').get() as { count: number }).count).to.equal(1);
      } finally {
        ledger.close();
      }
    });
  });
});
