/**
 * What an option that is on by default costs the receiver: `npm run bench:telemetry` (OpenTelemetry
 * with @opentelemetry/api installed and no SDK registered, the API's no-ops; the goal 2% at most)
 * and `npm run bench:history-cost` (history in MemoryStore, the default store).
 * - In process: the receiver (dist/) handles GET postbacks with the option on and off, in
 *   alternating runs, in µs per postback; this sees a difference far below HTTP's noise.
 * - Over HTTP: the router in Express and nodeHandler on node:http each run twice, the option on
 *   and off, measured in interleaved slices as `npm run bench` measures.
 */
import { EventEmitter } from 'node:events';
import { Bench } from 'tinybench';
import { createReceiver } from '../dist/core/receiver';
import { normalizeOptions } from '../dist/options';
import { FORMATS } from '../test/helpers/fixtures';
import { combine, interleavedSlices, startTarget, type Target } from './http';

const OPTION = process.argv[2];
if (OPTION !== 'telemetry' && OPTION !== 'history') throw new Error('usage: option-cost.ts telemetry|history');
const HOSTS: readonly Target[] = ['router', 'node'];
const VARIANTS = [
  ['on', {}],
  ['off', { [`BENCH_${OPTION.toUpperCase()}`]: '0' }],
] as const;
// A GET postback with every field a partner's template usually asks for.
const QUERY =
  'ActionId=7777.1.{n}&CampaignId=1234&CampaignName=Shop&ActionTrackerId=55&ActionTrackerName=Sale&EventCode=sale' +
  '&Status=PENDING&StatusDetail=&Payout=27.75&Amount=300.00&Currency=USD&EventDate=2026-11-01T10:00:00-07:00' +
  '&CreationDate=2026-11-01T10:00:01-07:00&LockingDate=2026-12-01&ClearedDate=&ReferringDate=2026-10-31' +
  '&ReferringType=CLICK_COOKIE&ClickId=abc123def456&PromoCode=&SubId1=member-1&SubId2=x&SubId3=y' +
  '&MediaPartnerId=42&IpAddress=203.0.113.9&CustomerStatus=NEW&CustomerId=c-9&Oid=order-1&SharedId=s&Note=n';

function geometricMean(values: readonly number[]): number {
  return Math.exp(values.reduce((sum, value) => sum + Math.log(value), 0) / values.length);
}

/** A receiver as createPostbackRouter makes it, with a listener that does nothing. */
function receiverWith(on: boolean) {
  const emitter = new EventEmitter();
  emitter.on('action', () => undefined);
  return createReceiver(emitter, normalizeOptions({ allowedIps: ['127.0.0.1'], [OPTION as string]: on }));
}

/**
 * µs per postback through the receiver with the option on and off: the median of RUNS runs of
 * each, alternating, each run on a new receiver (a store that fills as it runs would favour
 * whichever ran first).
 */
async function inProcess(): Promise<void> {
  const RUNS = 16;
  let counter = 0;
  const bench = new Bench({ time: 250 });
  for (let run = 0; run < RUNS; run += 1) {
    for (const [variant] of run % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
      let receiver: ReturnType<typeof receiverWith> | undefined;
      bench.add(
        `${variant} ${run}`,
        () => {
          counter += 1;
          const answer = receiver?.receive('actions', {
            method: 'GET',
            path: '/impact/actions',
            query: QUERY.replace('{n}', String(counter)),
            headers: {},
            remoteAddress: '127.0.0.1',
            readBody: () => Promise.resolve(null),
          });
          if (answer === undefined || answer instanceof Promise || answer.status !== 200)
            throw new Error('not answered');
        },
        {
          beforeAll: () => {
            receiver = receiverWith(variant === 'on');
          },
        },
      );
    }
  }
  await bench.run();
  const median = (variant: string): number => {
    const means = bench.tasks
      .filter((task) => task.name.startsWith(`${variant} `))
      .map((task) => (task.result.state === 'completed' ? task.result.latency.mean : Number.NaN))
      .sort((a, b) => a - b);
    return (((means[RUNS / 2 - 1] ?? 0) + (means[RUNS / 2] ?? 0)) / 2) * 1000;
  };
  const [on, off] = [median('on'), median('off')] as [number, number];
  console.log(
    `in process, a GET postback (median of ${RUNS} runs each): ${OPTION as string} on ${on.toFixed(2)} µs, off ${off.toFixed(2)} µs: ` +
      `${(on - off).toFixed(2)} µs (${(((on - off) / off) * 100).toFixed(1)}%) a postback`,
  );
}

async function main(): Promise<void> {
  await inProcess();
  const servers = await Promise.all(
    HOSTS.flatMap((host) =>
      VARIANTS.map(async ([variant, env]) => [`${host}/${variant}`, await startTarget(host, env)] as const),
    ),
  );
  try {
    const slices = await interleavedSlices(servers);
    console.log(`${OPTION as string} on against off, requests/s:`);
    console.log('| host | format | on | off | on / off | p99 on | p99 off |');
    console.log('| ---- | ------ | -- | --- | -------- | ------ | ------- |');
    for (const host of HOSTS) {
      const ratios: number[] = [];
      for (const format of FORMATS) {
        const [on, off] = VARIANTS.map(([variant]) => {
          const port = servers.find(([name]) => name === `${host}/${variant}`)?.[1].port ?? 0;
          return combine(port, format, slices.get(`${format}/${host}/${variant}`) ?? []);
        }) as [ReturnType<typeof combine>, ReturnType<typeof combine>];
        ratios.push(on.rps / off.rps);
        console.log(
          `| ${host} | ${format} | ${on.rps} | ${off.rps} | ${(on.rps / off.rps).toFixed(3)} | ${on.p99} | ${off.p99} |`,
        );
      }
      const mean = geometricMean(ratios);
      const goal = OPTION === 'telemetry' ? ` (${mean >= 0.98 ? 'goal met' : 'goal not met'}: 0.98 or better)` : '';
      console.log(`${host}: on / off geometric mean ${mean.toFixed(3)}${goal}`);
    }
  } finally {
    for (const [, { child }] of servers) child.kill();
  }
}

void main();
