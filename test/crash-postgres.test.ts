import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { killAgainAndAgain, startChildServer, type ChildServer } from './helpers/child-server';
import { createTestSchema, DATABASE_URL, requirePostgres, type TestSchema } from './helpers/services';

type Fields = Readonly<Record<string, string>>;

/** One delivery as impact.com makes it (GET); resolves with the status, or 0 if the connection died. */
function deliver(port: number, fields: Fields, route = 'actions'): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: `/impact/${route}?${new URLSearchParams(fields).toString()}`, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
  });
}

const FINAL = new Set(['APPROVED', 'REVERSED']);

interface LedgerRow {
  readonly id: number;
  readonly action_id: string;
  readonly status: string | null;
  readonly payout: string | null;
  readonly previous_status: string | null;
  readonly previous_payout: string | null;
  readonly key: string;
}

/** What an action's state is worth to its user, in cents: nothing once reversed. */
function worth(status: string | null, payout: string | null): number {
  return status === 'REVERSED' || payout === null ? 0 : Math.round(Number(payout) * 100);
}

describe('crash with PostgresStore: SIGKILL at the worst moments, listeners writing through ctx.transaction', function () {
  this.timeout(180_000);
  let schema: TestSchema;
  const servers: ChildServer[] = [];

  before(async function () {
    await requirePostgres(this);
  });
  beforeEach(async () => {
    schema = await createTestSchema();
    await schema.pool.query(`
      CREATE TABLE "${schema.name}".ledger (
        id serial PRIMARY KEY, action_id text NOT NULL, status text, payout numeric,
        previous_status text, previous_payout numeric, key text NOT NULL, pid integer NOT NULL);
      CREATE TABLE "${schema.name}".stale_log (
        id serial PRIMARY KEY, action_id text NOT NULL, status text, previous_status text, key text NOT NULL);
    `);
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.kill()));
    await schema.drop();
  });

  async function start(env: Record<string, string> = {}): Promise<ChildServer> {
    const server = await startChildServer({ DATABASE_URL, PG_SCHEMA: schema.name, ...env }, 'pg-ledger-server');
    servers.push(server);
    return server;
  }

  async function rows<R>(sql: string): Promise<R[]> {
    return (await schema.pool.query(sql.replaceAll('$schema', `"${schema.name}"`))).rows as R[];
  }

  it('leaves exactly one ledger row per postback when killed mid-listener, after COMMIT, or holding the claim', async () => {
    const moments = [
      ['after-insert', 'LISTENER_WROTE'],
      ['after-commit', 'COMMITTED'],
      ['after-claim', 'CLAIMED'],
    ] as const;
    const figures = { sent: 0, kills: 0, retries: 0, duplicates: 0 };
    let normal = await start();
    for (const [hang, signal] of moments) {
      for (let index = 0; index < 4; index += 1) {
        const fields = { ActionId: `9.${hang}.${index}`, Status: 'PENDING', Payout: `${index + 1}.50` };
        const doomed = await start({ HANG: hang });
        const lost = deliver(doomed.port, fields);
        figures.sent += 1;
        await doomed.waitFor(signal);
        await doomed.kill();
        figures.kills += 1;
        expect(await lost).to.equal(0);
        // impact.com retries until it gets a 2xx, here from a process that was running all along.
        for (let attempt = 0; ; attempt += 1) {
          expect(attempt, 'retries before a 2xx').to.be.below(50);
          const status = await deliver(normal.port, fields);
          figures.sent += 1;
          if (status === 200) break;
          figures.retries += 1;
          await sleep(100);
        }
        // And once more, later: a duplicate.
        expect(await deliver(normal.port, fields)).to.equal(200);
        figures.sent += 1;
        figures.duplicates += 1;
      }
      // Between moments, the surviving process is restarted too: nothing depends on its memory.
      await normal.kill();
      normal = await start();
    }
    const ledger = await rows<LedgerRow>('SELECT * FROM $schema.ledger ORDER BY id');
    console.log(
      `      crash matrix: ${figures.sent} postbacks sent, ${figures.kills} kills, ${figures.retries} retries answered non-2xx, ${figures.duplicates} duplicates, ${ledger.length} ledger rows`,
    );
    expect(ledger).to.have.length(12);
    expect(new Set(ledger.map((row) => row.action_id)).size).to.equal(12);
    expect(new Set(ledger.map((row) => row.key)).size).to.equal(12);
    expect(ledger.every((row) => row.previous_status === null)).to.equal(true);
  });

  it('two processes, 500 postbacks of lifecycle sequences out of order and at once, one process killed again and again: the ledger is exact', async () => {
    // 125 actions: PENDING, a modification (still PENDING), then APPROVED or REVERSED, plus one
    // copy of one of the three, as impact.com's retries make. Shuffled, then sent 12 at a time.
    const postbacks: Fields[] = [];
    const finals = new Map<string, Fields>();
    for (let action = 0; action < 125; action += 1) {
      const id = `7.${action}`;
      const tracked = { ActionId: id, Status: 'PENDING', Payout: '10.00', Amount: '100.00', Currency: 'USD' };
      const modified = { ...tracked, Payout: '8.00', DeltaPayout: '-2.00', Amount: '80.00' };
      const final =
        action % 3 === 0
          ? { ...modified, Status: 'REVERSED', Payout: '0.00', DeltaPayout: '-8.00' }
          : { ...modified, Status: 'APPROVED' };
      finals.set(id, final);
      const sequence = [tracked, modified, final];
      postbacks.push(...sequence, sequence[action % 3] ?? tracked);
    }
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let index = postbacks.length - 1; index > 0; index -= 1) {
      const other = Math.floor(random() * (index + 1));
      [postbacks[index], postbacks[other]] = [postbacks[other] as Fields, postbacks[index] as Fields];
    }

    const env = { LISTENER_DELAY_MS: '10' };
    const steady = await start(env);
    const killing = killAgainAndAgain(
      await start(env),
      () => start(env),
      () => 150 + Math.floor(random() * 150),
    );
    let attempts = 0;
    const queue = [...postbacks];
    const sender = async () => {
      for (let fields = queue.shift(); fields !== undefined; fields = queue.shift()) {
        for (;;) {
          attempts += 1;
          const target = random() < 0.5 || killing.victim === null ? steady : killing.victim;
          if ((await deliver(target.port, fields)) === 200) break;
          await sleep(50);
        }
        // Paced, so that the sending spans several kills and restarts.
        await sleep(80);
      }
    };
    await Promise.all(Array.from({ length: 12 }, sender));
    const kills = await killing.stop();

    const ledger = await rows<LedgerRow>('SELECT * FROM $schema.ledger ORDER BY id');
    const stale = await rows<{ status: string; previous_status: string; key: string }>(
      'SELECT * FROM $schema.stale_log ORDER BY id',
    );
    console.log(
      `      two processes: ${postbacks.length} postbacks, ${attempts} requests, ${kills} kills, ${ledger.length} ledger rows, ${stale.length} stale`,
    );
    expect(kills).to.be.at.least(3);
    // Each of the 375 distinct postbacks applied exactly once: delivered, or recognised as stale.
    const keys = [...ledger.map((row) => row.key), ...stale.map((row) => row.key)];
    expect(keys).to.have.length(375);
    expect(new Set(keys).size).to.equal(375);
    // Every stale one is a PENDING that came after a final state.
    for (const row of stale) {
      expect(row.status).to.equal('PENDING');
      expect(FINAL.has(row.previous_status)).to.equal(true);
    }
    for (const [id, final] of finals) {
      const chain = ledger.filter((row) => row.action_id === id);
      // ctx.previous was exact: each row saw the one applied before it.
      chain.forEach((row, index) => {
        const before = chain[index - 1];
        expect([row.previous_status, row.previous_payout], `${id} row ${index}`).to.deep.equal([
          before?.status ?? null,
          before?.payout ?? null,
        ]);
      });
      // No final state undone: nothing follows the final one, and it is the last applied.
      const last = chain.at(-1);
      expect([last?.status, Number(last?.payout)], id).to.deep.equal([final['Status'], Number(final['Payout'])]);
      expect(chain.filter((row) => FINAL.has(row.status ?? ''))).to.have.length(1);
      // Crediting by the difference from ctx.previous pays exactly what the final state is worth.
      const credited = chain.reduce(
        (sum, row) => sum + worth(row.status, row.payout) - worth(row.previous_status, row.previous_payout),
        0,
      );
      expect(credited, id).to.equal(worth(final['Status'] ?? null, final['Payout'] ?? null));
    }
  });
});
