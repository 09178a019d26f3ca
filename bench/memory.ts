/**
 * Memory benchmark: 200,000 distinct postbacks through the router in one server process, with
 * the default MemoryStore (at most 100,000 keys). Prints resident memory before, at its peak
 * and after, and the growth per 10,000 postbacks: it should flatten once the store is full.
 */
import { fork } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { encode, FORMATS, TRACKED_ACTION, type Format } from '../test/helpers/fixtures';

const TOTAL = Number(process.env['BENCH_MEMORY_TOTAL'] ?? 200_000);
const STEP = 10_000;
const CONNECTIONS = 50;

export interface MemoryResults {
  total: number;
  beforeMb: number;
  peakMb: number;
  afterMb: number;
  growthPer10kMb: number[];
  /** V8 heap in use after a full collection: the live data, without the allocators' reserve. */
  heapBeforeMb: number;
  heapPeakMb: number;
  heapAfterMb: number;
}

interface Usage {
  rss: number;
  heapUsed: number;
}

function send(agent: http.Agent, port: number, index: number): Promise<void> {
  const format = FORMATS[index % 4] as Format;
  const { method, query, contentType, body } = encode(format, { ...TRACKED_ACTION, ActionId: `M.${index}` });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        agent,
        method,
        path: `/impact/actions${query}`,
        headers: contentType === undefined ? {} : { 'content-type': contentType },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) resolve();
          else reject(new Error(`status ${res.statusCode ?? 0}`));
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function runMemoryBenchmark(): Promise<MemoryResults> {
  const child = fork(path.join(__dirname, 'targets.ts'), [], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    env: { ...process.env, TARGET: 'router' },
  });
  const port = await new Promise<number>((resolve) =>
    child.once('message', (message: { port: number }) => {
      resolve(message.port);
    }),
  );
  const usage = (): Promise<Usage> =>
    new Promise((resolve) => {
      const onMessage = (message: { type?: string } & Partial<Usage>) => {
        if (message.type !== 'rss') return;
        child.off('message', onMessage);
        resolve({ rss: message.rss ?? 0, heapUsed: message.heapUsed ?? 0 });
      };
      child.on('message', onMessage);
      child.send({ type: 'rss' });
    });
  const mb = (bytes: number) => Number((bytes / 1024 / 1024).toFixed(1));
  try {
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    const first = await usage();
    const before = first.rss;
    let peak = before;
    let previous = before;
    let heapPeak = first.heapUsed;
    let heapAfter = first.heapUsed;
    const growth: number[] = [];
    for (let start = 0; start < TOTAL; start += STEP) {
      let next = start;
      await Promise.all(
        Array.from({ length: CONNECTIONS }, async () => {
          while (next < start + STEP) {
            const index = next;
            next += 1;
            await send(agent, port, index);
          }
        }),
      );
      const measured = await usage();
      const now = measured.rss;
      peak = Math.max(peak, now);
      heapPeak = Math.max(heapPeak, measured.heapUsed);
      heapAfter = measured.heapUsed;
      growth.push(mb(now - previous));
      previous = now;
    }
    agent.destroy();
    return {
      total: TOTAL,
      beforeMb: mb(before),
      peakMb: mb(peak),
      afterMb: mb(previous),
      growthPer10kMb: growth,
      heapBeforeMb: mb(first.heapUsed),
      heapPeakMb: mb(heapPeak),
      heapAfterMb: mb(heapAfter),
    };
  } finally {
    child.kill();
  }
}

export function printMemory(results: MemoryResults): void {
  console.log(
    `memory: ${results.total} distinct postbacks; RSS ${results.beforeMb} MB before, ${results.peakMb} MB peak, ${results.afterMb} MB after; ` +
      `growth per 10,000 (MB): ${results.growthPer10kMb.join(', ')}; ` +
      `V8 heap in use ${results.heapBeforeMb} MB before, ${results.heapPeakMb} MB peak, ${results.heapAfterMb} MB after`,
  );
}
