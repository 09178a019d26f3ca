import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import type pg from 'pg';
import { DATABASE_URL, useTestSchema } from './helpers/services';

const SERVER = path.resolve(__dirname, '../example-app/server.ts');

interface RunningExample {
  readonly child: ChildProcess;
  readonly base: string;
  readonly output: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The example app's own server.ts in a child process, as `npm run example` starts it. */
async function startExample(env: Record<string, string>): Promise<RunningExample> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const output: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const base = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => {
      for (const line of data
        .toString()
        .split('\n')
        .filter((text) => text !== '')) {
        output.push(line);
        const match = /listening on (http:\/\/localhost:\d+)/.exec(line);
        if (match?.[1] !== undefined) resolve(match[1].replace('localhost', '127.0.0.1'));
      }
    });
    void exited.then(({ code }) => reject(new Error(`the example exited (${String(code)}) before listening`)));
  });
  return { child, base, output, exited };
}

describe('example app shutdown (a real child process)', function () {
  this.timeout(60_000);

  it('exits 0 on SIGINT, in memory', async () => {
    const example = await startExample({ DATABASE_URL: '' });
    const res = await fetch(`${example.base}/impact/actions?ActionId=1000.1.1&Payout=1.00&SubId1=alice`);
    expect(res.status).to.equal(200);
    example.child.kill('SIGINT');
    expect(await example.exited).to.deep.equal({ code: 0, signal: null });
    expect(example.output).to.include('SIGINT: shutting down');
  });

  it('stops, every process of it, on one SIGTERM to `npm run example`, as a process manager sends it', async function () {
    this.timeout(120_000);
    // Its own process group, to see that nothing of it is left afterwards.
    const npm = spawn('npm', ['run', 'example'], {
      cwd: path.resolve(__dirname, '..'),
      env: { ...process.env, PORT: '0', DATABASE_URL: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    const output: string[] = [];
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    const listening = new Promise<void>((resolve) => {
      npm.stdout.on('data', (data: Buffer) => {
        output.push(...data.toString().split('\n'));
        if (output.some((line) => line.includes('listening on'))) resolve();
      });
    });
    const group = npm.pid as number;
    try {
      await Promise.race([listening, exited.then(() => Promise.reject(new Error(`npm exited: ${output.join('\n')}`)))]);
      process.kill(group, 'SIGTERM');
      await exited;
      let left = true;
      for (let tries = 0; tries < 100 && left; tries += 1) {
        left = isAlive(-group);
        if (left) await sleep(50);
      }
      expect({ left, output: output.filter((line) => /shutting down|stopped/.test(line)) }).to.deep.equal({
        left: false,
        output: ['SIGTERM: shutting down', 'stopped'],
      });
    } finally {
      if (isAlive(-group)) process.kill(-group, 'SIGKILL');
    }
  });

  describe('on PostgreSQL', function () {
    const testSchema = useTestSchema();

    it('on SIGTERM during a slow listener: that postback still gets its 2xx, nothing is lost, and it exits 0', async () => {
      const example = await startExample({ DATABASE_URL, DATABASE_SCHEMA: testSchema().name });
      // The ledger's table locked by another transaction: the example's listener blocks writing
      // to it, a slow listener without any hook in the example.
      const locker: pg.PoolClient = await testSchema().pool.connect();
      try {
        await locker.query('BEGIN');
        await locker.query(`LOCK TABLE "${testSchema().name}".example_ledger IN ACCESS EXCLUSIVE MODE`);
        const slow = fetch(`${example.base}/impact/actions?ActionId=1000.2.1&Payout=5.00&Currency=USD&SubId1=alice`);
        await waitForLockWait(testSchema().pool);
        example.child.kill('SIGTERM');
        await sleep(300);
        // Stopped taking connections: a new postback is not answered 2xx (impact.com retries it).
        const late = await fetch(`${example.base}/impact/actions?ActionId=1000.2.2&Payout=1.00&SubId1=bob`).then(
          (res) => res.status,
          () => 'refused',
        );
        expect(late === 'refused' || late === 503, `late postback answered ${String(late)}`).to.equal(true);
        expect(example.child.exitCode).to.equal(null);
        await locker.query('ROLLBACK');
        expect((await slow).status).to.equal(200);
      } finally {
        locker.release();
      }
      expect(await example.exited).to.deep.equal({ code: 0, signal: null });
      expect(example.output).to.include.members(['SIGTERM: shutting down', 'stopped']);
      const { rows } = await testSchema().pool.query<{ action_id: string; credit_cents: string }>(
        `SELECT action_id, credit_cents FROM "${testSchema().name}".example_ledger`,
      );
      expect(rows).to.deep.equal([{ action_id: '1000.2.1', credit_cents: '500' }]);
    });
  });
});

/** Resolves once a query waits for a lock on the ledger: the listener is inside its write. */
async function waitForLockWait(pool: pg.Pool): Promise<void> {
  for (let tries = 0; tries < 200; tries += 1) {
    const { rows } = await pool.query<{ waiting: string }>(
      `SELECT count(*) AS waiting FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%example_ledger%'`,
    );
    if (Number(rows[0]?.waiting) > 0) return;
    await sleep(25);
  }
  throw new Error('the listener never reached the ledger');
}

/** Whether a process (or, given a negative number, any process of a group) is still there. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
