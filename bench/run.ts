/**
 * npm run bench: the HTTP comparison, the stage micro-benchmark and the memory run, printed as
 * tables and written to bench/results.json for comparison between commits.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { printHostileTable, runHostileBenchmark } from './hostile';
import { ADAPTERS, HTTP_SETTINGS, printHttpTable, runHttpBenchmark, type HttpResults } from './http';
import { FORMATS } from '../test/helpers/fixtures';
import { runInboxAnswerBenchmark } from './inbox-answers';
import { printMemory, runMemoryBenchmark } from './memory';
import { printStageTable, runStageBenchmark } from './stages';
import { printStoreTable, runStoreBenchmark } from './stores';

function geometricMeanOf(values: readonly number[]): number {
  return Number(Math.exp(values.reduce((sum, value) => sum + Math.log(value), 0) / values.length).toFixed(3));
}

/**
 * The hosts beside Express: `adapters.<host>.<format>` as measured, and per host the geometric
 * means over the formats of its requests/s against the hand-written Express route's and the bare
 * floor's, and whether its p99 was no worse than Express's in every format.
 */
function adapterResults(formats: HttpResults) {
  const adapters = Object.fromEntries(
    ADAPTERS.map((host) => [host, Object.fromEntries(FORMATS.map((format) => [format, formats[format][host]]))]),
  );
  const summary = Object.fromEntries(
    ADAPTERS.map((host) => [
      host,
      {
        toExpress: geometricMeanOf(FORMATS.map((format) => formats[format][host].rps / formats[format].express.rps)),
        toFloor: geometricMeanOf(FORMATS.map((format) => formats[format][host].rps / formats[format].floor.rps)),
        p99NoWorseThanExpress: FORMATS.every((format) => formats[format][host].p99 <= formats[format].express.p99),
      },
    ]),
  );
  return { adapters, summary };
}

async function main(): Promise<void> {
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  console.log(`machine: ${machine}`);
  const formats = await runHttpBenchmark();
  printHttpTable(formats);
  // The goal: the router's requests/s at 0.85 of the hand-written route's or better (the
  // journal's few percent buy the ordering rule), as the geometric mean over the four formats of
  // one interleaved run (a single format moves by a few percent from run to run on a shared
  // machine).
  const ratios = Object.values(formats).map((row) => row.ratio);
  const geometricMean = geometricMeanOf(ratios);
  console.log(
    `router / express requests/s, geometric mean over the formats: ${geometricMean} (${geometricMean >= 0.85 ? 'goal met' : 'goal not met'}: 0.85 or better)`,
  );
  // The goal for nodeHandler: 2.0 or more of the hand-written Express route, p99 no worse.
  const { adapters, summary: adapterSummary } = adapterResults(formats);
  for (const [host, { toExpress, toFloor, p99NoWorseThanExpress }] of Object.entries(adapterSummary)) {
    const goal =
      host === 'node'
        ? ` (${toExpress >= 2 && p99NoWorseThanExpress ? 'goal met' : 'goal not met'}: 2.0 or better, p99 no worse)`
        : '';
    console.log(
      `${host} / express requests/s, geometric mean: ${toExpress}${goal}; / floor: ${toFloor}; p99 no worse than express in every format: ${p99NoWorseThanExpress}`,
    );
  }
  const stores = await runStoreBenchmark();
  printStoreTable(stores);
  const inboxAnswers = await runInboxAnswerBenchmark();
  const stages = await runStageBenchmark();
  printStageTable(stages);
  const hostile = runHostileBenchmark();
  printHostileTable(hostile);
  const memory = await runMemoryBenchmark();
  printMemory(memory);
  const file = path.join(__dirname, 'results.json');
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), machine, http: HTTP_SETTINGS, formats, geometricMean, adapters, adapterSummary, stores, inboxAnswers, stages, hostile, memory }, null, 2)}\n`,
  );
  console.log(`written: ${file}`);
}

void main();
