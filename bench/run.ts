/**
 * npm run bench: the HTTP comparison, the stage micro-benchmark and the memory run, printed as
 * tables and written to bench/results.json for comparison between commits.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HTTP_SETTINGS, printHttpTable, runHttpBenchmark } from './http';
import { printMemory, runMemoryBenchmark } from './memory';
import { printStageTable, runStageBenchmark } from './stages';

async function main(): Promise<void> {
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  console.log(`machine: ${machine}`);
  const formats = await runHttpBenchmark();
  printHttpTable(formats);
  const stages = await runStageBenchmark();
  printStageTable(stages);
  const memory = await runMemoryBenchmark();
  printMemory(memory);
  const file = path.join(__dirname, 'results.json');
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), machine, http: HTTP_SETTINGS, formats, stages, memory }, null, 2)}\n`,
  );
  const short = Object.entries(formats).filter(([, row]) => row.ratio < 0.9 || row.p99Ratio > 1.2);
  console.log(
    short.length === 0
      ? "goal met: the router serves at least 90% of the hand-written route's requests/s, p99 within 1.2×, for every format"
      : `goal not met for: ${short.map(([format, row]) => `${format} (${row.ratio} of the requests/s, p99 ${row.p99Ratio}×)`).join(', ')}`,
  );
  console.log(`written: ${file}`);
}

void main();
