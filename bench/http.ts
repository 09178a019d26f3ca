/**
 * HTTP benchmark: for each format, a bare node:http server, a hand-written Express route, the
 * router in Express, and the receiver through each other host's adapter, measured interleaved in one run with autocannon on loopback (no pipelining,
 * bounded in time). Every request carries a new action id, so the router does its full work
 * (a dedupe claim and commit, and an emit) on each. Prints a table; returns the results.
 *
 * Each target is measured in many short slices, taken in turn with the others, and its
 * requests/s is all its requests over all its measured time. This shared machine's speed
 * changes from one second to the next by a quarter or more: a few long cells, one per target,
 * each catch a different speed, while many short ones in turn catch the same mix.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import autocannon from 'autocannon';
import { encode, FORMATS, TRACKED_ACTION, type Format } from '../test/helpers/fixtures';

export const TARGETS = ['floor', 'express', 'router', 'node', 'fetch', 'fastify'] as const;
/** The hosts beside Express, reported as `adapters` in bench/results.json. */
export const ADAPTERS = ['node', 'fetch', 'fastify'] as const;
export type Target = (typeof TARGETS)[number];

export interface Measurement {
  rps: number;
  p50: number;
  p99: number;
}

// A round is one slice of every target in every format: 30 rounds of 0.5 s slices give each
// target 15 s per format. More rounds narrow the ratios further: BENCH_ROUNDS=90 npm run bench.
export const HTTP_SETTINGS = {
  rounds: Number(process.env['BENCH_ROUNDS'] ?? 30),
  secondsPerSlice: Number(process.env['BENCH_SLICE_SECONDS'] ?? 0.5),
  connections: 20,
} as const;

/** One slice as autocannon reports it with skipAggregateResult: histograms still encoded. */
export interface Slice {
  totalCompletedRequests: number;
  /** Seconds. */
  duration: number;
  non2xx: number;
  errors: number;
}

// autocannon exports aggregateResult, which merges the latency histograms of runs made with
// skipAggregateResult; @types/autocannon does not declare it.
const { aggregateResult } = autocannon as unknown as {
  aggregateResult: (results: readonly Slice[], options: autocannon.Options) => autocannon.Result;
};

/** Starts a server of bench/targets.ts in a child process; `env` picks it (TARGET, STORE). */
export function startTarget(
  target: Target,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(path.join(__dirname, 'targets.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env, TARGET: target },
  });
  return new Promise((resolve) =>
    child.once('message', (message: { port: number }) => {
      resolve({ child, port: message.port });
    }),
  );
}

// Every request a new action id, across all slices and targets.
let counter = 0;

function autocannonOptions(port: number, format: Format, seconds: number): autocannon.Options {
  return {
    url: `http://127.0.0.1:${port}`,
    connections: HTTP_SETTINGS.connections,
    pipelining: 1,
    duration: seconds,
    // autocannon only notices the end of the duration on a sample tick (every second by
    // default), which would stretch a half-second slice to a whole one.
    sampleInt: 100,
    skipAggregateResult: true,
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
  };
}

export async function measureSlice(port: number, format: Format, seconds: number): Promise<Slice> {
  const slice = (await autocannon(autocannonOptions(port, format, seconds))) as unknown as Slice;
  if (slice.non2xx > 0 || slice.errors > 0) {
    throw new Error(`${format} on port ${port}: ${slice.non2xx} non-2xx answers, ${slice.errors} errors`);
  }
  return slice;
}

/** All slices of one target and format as one measurement: latencies merged, rps overall. */
export function combine(port: number, format: Format, slices: readonly Slice[]): Measurement {
  const merged = aggregateResult(slices, autocannonOptions(port, format, HTTP_SETTINGS.secondsPerSlice));
  const requests = slices.reduce((sum, slice) => sum + slice.totalCompletedRequests, 0);
  const seconds = slices.reduce((sum, slice) => sum + slice.duration, 0);
  return { rps: Math.round(requests / seconds), p50: merged.latency.p50, p99: merged.latency.p99 };
}

export type HttpResults = Record<Format, Record<Target, Measurement> & { ratio: number; p99Ratio: number }>;

/**
 * Measures every server in every format, one warm-up slice each, then HTTP_SETTINGS.rounds
 * rounds of one slice each, by `<format>/<name>`.
 */
export async function interleavedSlices(
  servers: readonly (readonly [string, { readonly port: number }])[],
): Promise<Map<string, Slice[]>> {
  const slices = new Map<string, Slice[]>();
  for (const [, { port }] of servers) for (const format of FORMATS) await measureSlice(port, format, 1); // warm-up
  for (let round = 0; round < HTTP_SETTINGS.rounds; round += 1) {
    // Every other round in reverse order, so that no server always runs just after another.
    const order = round % 2 === 0 ? servers : [...servers].reverse();
    for (const format of FORMATS) {
      for (const [name, { port }] of order) {
        const key = `${format}/${name}`;
        const slice = await measureSlice(port, format, HTTP_SETTINGS.secondsPerSlice);
        slices.set(key, [...(slices.get(key) ?? []), slice]);
      }
    }
  }
  return slices;
}

export async function runHttpBenchmark(): Promise<HttpResults> {
  const servers = await Promise.all(TARGETS.map(async (target) => [target, await startTarget(target)] as const));
  try {
    const slices = await interleavedSlices(servers);
    const results = {} as HttpResults;
    for (const format of FORMATS) {
      const row = {} as Record<Target, Measurement>;
      for (const [target, { port }] of servers)
        row[target] = combine(port, format, slices.get(`${format}/${target}`) ?? []);
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
  lines.push(
    '',
    '| format | host | req/s | / express | / floor | p50 (ms) | p99 (ms) | p99 express (ms) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const format of FORMATS) {
    const row = results[format];
    for (const host of ADAPTERS) {
      const cell = row[host];
      lines.push(
        `| ${format} | ${host} | ${cell.rps} | ${(cell.rps / row.express.rps).toFixed(2)} | ${(cell.rps / row.floor.rps).toFixed(2)} | ${cell.p50} | ${cell.p99} | ${row.express.p99} |`,
      );
    }
  }
  console.log(lines.join('\n'));
}
