/**
 * HTTP benchmark: for each format, a bare node:http server, a hand-written Express route and
 * the router, measured interleaved in one run with autocannon on loopback (no pipelining,
 * bounded in time). Every request carries a new action id, so the router does its full work
 * (a dedupe claim and commit, and an emit) on each. Prints a table; returns the results.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import autocannon from 'autocannon';
import { encode, FORMATS, TRACKED_ACTION, type Format } from '../test/helpers/fixtures';

export const TARGETS = ['floor', 'express', 'router'] as const;
export type Target = (typeof TARGETS)[number];

export interface Measurement {
  rps: number;
  p50: number;
  p99: number;
}

// More rounds narrow the medians on a noisy machine: BENCH_ROUNDS=15 npm run bench.
export const HTTP_SETTINGS = {
  rounds: Number(process.env['BENCH_ROUNDS'] ?? 5),
  secondsPerCell: Number(process.env['BENCH_DURATION'] ?? 3),
  connections: 20,
} as const;

function startTarget(target: Target): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(path.join(__dirname, 'targets.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, TARGET: target },
  });
  return new Promise((resolve) =>
    child.once('message', (message: { port: number }) => {
      resolve({ child, port: message.port });
    }),
  );
}

async function measure(port: number, format: Format, seconds: number): Promise<Measurement> {
  let counter = 0;
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: HTTP_SETTINGS.connections,
    pipelining: 1,
    duration: seconds,
    requests: [
      {
        setupRequest: (request) => {
          counter += 1;
          const { method, query, contentType, body } = encode(format, {
            ...TRACKED_ACTION,
            ActionId: `8882.${process.pid}.${counter}`,
          });
          return {
            ...request,
            method,
            path: `/impact/actions${query}`,
            headers: contentType === undefined ? {} : { 'content-type': contentType },
            ...(body === undefined ? {} : { body }),
          };
        },
      },
    ],
  });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${format} on port ${port}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
  }
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99 };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export type HttpResults = Record<Format, Record<Target, Measurement> & { ratio: number; p99Ratio: number }>;

export async function runHttpBenchmark(): Promise<HttpResults> {
  const servers = await Promise.all(TARGETS.map(async (target) => [target, await startTarget(target)] as const));
  try {
    const samples = new Map<string, Measurement[]>();
    for (const [, { port }] of servers) for (const format of FORMATS) await measure(port, format, 1); // warm-up
    for (let round = 0; round < HTTP_SETTINGS.rounds; round += 1) {
      // Every other round in reverse order, so that no target always runs just after another.
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const format of FORMATS) {
        for (const [target, { port }] of order) {
          const key = `${format}/${target}`;
          samples.set(key, [...(samples.get(key) ?? []), await measure(port, format, HTTP_SETTINGS.secondsPerCell)]);
        }
      }
    }
    const results = {} as HttpResults;
    for (const format of FORMATS) {
      const row = {} as Record<Target, Measurement>;
      for (const target of TARGETS) {
        const runs = samples.get(`${format}/${target}`) ?? [];
        row[target] = {
          rps: Math.round(median(runs.map((run) => run.rps))),
          p50: median(runs.map((run) => run.p50)),
          p99: median(runs.map((run) => run.p99)),
        };
      }
      results[format] = {
        ...row,
        ratio: Number((row.router.rps / row.express.rps).toFixed(3)),
        p99Ratio: Number((row.router.p99 / Math.max(row.express.p99, 1)).toFixed(2)),
      };
    }
    return results;
  } finally {
    for (const [, { child }] of servers) child.kill();
  }
}

export function printHttpTable(results: HttpResults): void {
  const lines = [
    '| format | floor req/s | express req/s | router req/s | router / express | p50 floor / express / router (ms) | p99 floor / express / router (ms) |',
    '| --- | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  for (const format of FORMATS) {
    const row = results[format];
    lines.push(
      `| ${format} | ${row.floor.rps} | ${row.express.rps} | ${row.router.rps} | ${row.ratio.toFixed(2)} | ${row.floor.p50} / ${row.express.p50} / ${row.router.p50} | ${row.floor.p99} / ${row.express.p99} / ${row.router.p99} |`,
    );
  }
  console.log(lines.join('\n'));
}
