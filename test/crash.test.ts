import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startChildServer, type ChildServer } from './helpers/child-server';

const POSTBACK = JSON.stringify({ ActionId: '8882.1.1', Payout: '27.75', SubId1: 'alice' });

/** One delivery as impact.com makes it; resolves with the status, or 0 if the connection died. */
function deliver(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/impact/actions',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(POSTBACK);
  });
}

async function ledgerLines(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line !== '');
}

describe('crash: SIGKILL at the worst moments, then impact.com retries', function () {
  this.timeout(60_000);
  let dir = '';
  let ledger = '';
  const servers: ChildServer[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'impact-crash-'));
    ledger = path.join(dir, 'ledger.txt');
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.kill();
    await rm(dir, { recursive: true, force: true });
  });

  async function start(env: Record<string, string>): Promise<ChildServer> {
    const server = await startChildServer({ LEDGER: ledger, ...env });
    servers.push(server);
    return server;
  }

  /** Kills the first server when it prints `signal`, restarts it, and retries until acknowledged. */
  async function crashAndRetry(hang: string, signal: string, env: Record<string, string> = {}): Promise<number[]> {
    const first = await start({ HANG: hang, ...env });
    const pending = deliver(first.port);
    await first.waitFor(signal);
    await first.kill();
    const statuses = [await pending];
    const second = await start(env);
    statuses.push(await deliver(second.port));
    statuses.push(await deliver(second.port));
    return statuses;
  }

  it('(a) killed while the listener runs: the retry is emitted and the work is done once', async () => {
    const statuses = await crashAndRetry('listener', 'LISTENER_RUNNING');
    expect(statuses).to.deep.equal([0, 200, 200]);
    const lines = await ledgerLines(ledger);
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^8882\.1\.1 27\.75 actions:/);
  });

  it('(b) killed after the listener finished and the store committed, before the answer: the in-memory store has forgotten, so the work is done twice (known limit of MemoryStore)', async () => {
    const statuses = await crashAndRetry('after-commit', 'COMMITTED');
    expect(statuses).to.deep.equal([0, 200, 200]);
    // The gap: the first process did the work, impact.com never saw the 200, the new process has
    // no memory of the postback. Listeners must be idempotent on meta.key, or use a durable store.
    const lines = await ledgerLines(ledger);
    expect(lines).to.have.length(2);
    expect(lines[0]).to.equal(lines[1]);
  });
});
