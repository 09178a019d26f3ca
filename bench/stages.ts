/**
 * Micro-benchmark of each stage of the router on its own (tinybench), in operations per second,
 * on the compiled package (dist/) as users run it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Bench } from 'tinybench';
import { parseJsonBody, readJsonBody } from '../dist/body/parse-json';
import { parseUrlEncoded } from '../dist/body/parse-urlencoded';
import { parseXmlBody } from '../dist/body/parse-xml';
import { dedupeKey } from '../dist/dedupe/dedupe-key';
import { runListeners } from '../dist/delivery/call-listeners';
import { buildEvent } from '../dist/fields/build-event';
import { compileFieldIndex } from '../dist/fields/field-names';
import { ACTION_FIELDS } from '../dist/fields/field-specs';
import { normalizeFields } from '../dist/fields/normalize-fields';
import { compileAllowList } from '../dist/ip/allow-list';
import { resolveClientIp } from '../dist/ip/client-ip';
import { MemoryStore } from '../dist/stores/memory/memory-store';
import { SqliteStore } from '../dist/stores/sqlite/sqlite-store';
import type { BeginResult } from '../dist/stores/store';
import { encode, TRACKED_ACTION } from '../test/helpers/fixtures';

export type StageResults = Record<string, number>;

export async function runStageBenchmark(): Promise<StageResults> {
  const isAllowed = compileAllowList(['198.51.100.0/24', '203.0.113.0/24', '2001:db8::/32']);
  const json = encode('json', TRACKED_ACTION).body ?? '';
  const xml = encode('xml', TRACKED_ACTION).body ?? '';
  const form = encode('form', TRACKED_ACTION).body ?? '';
  const index = compileFieldIndex(ACTION_FIELDS, new Map());
  const record = parseUrlEncoded(form, 100);
  const normalized = normalizeFields(record, index);
  // Full, as it is after the first 100,000 postbacks: from then on every claim evicts a key.
  const memory = new MemoryStore();
  const journalRecord = { status: 'PENDING', payout: '27.75' };
  for (let key = 0; key < memory.maxKeys; key += 1)
    void handled(memory.begin(`full${key}`, `action:${key}`), journalRecord);
  const dir = mkdtempSync(path.join(tmpdir(), 'impact-bench-'));
  const sqlite = new SqliteStore({ path: path.join(dir, 'bench.db') });
  const emitter = new EventEmitter();
  emitter.on('action', () => undefined);
  let counter = 0;

  const bench = new Bench({ time: 500 });
  bench
    .add('IP check (resolve + allow-list, a known address)', () => {
      const ip = resolveClientIp('::ffff:198.51.100.7', undefined, { kind: 'none' });
      if (ip === null || !isAllowed(ip)) throw new Error('refused');
    })
    .add('parse query/form', () => parseUrlEncoded(form, 100))
    .add('parse JSON (compact: JSON.parse fast path)', () => parseJsonBody(json, 100))
    .add('parse JSON (strict reader, as for any other layout)', () => readJsonBody(json, 100))
    .add('parse XML (xml2js, guarded)', () => parseXmlBody(xml, 100))
    .add('normalise fields', () => normalizeFields(record, index))
    .add('dedupe key (canonical text + SHA-256)', () => dedupeKey('actions', normalized.canonical))
    .add('build frozen event', () =>
      buildEvent('actions', normalizeFields(record, index), record, {
        receivedAt: new Date(),
        ip: '198.51.100.7',
        format: 'form',
        route: 'actions',
        path: '/impact/actions',
        key: 'k',
      }),
    )
    .add('MemoryStore begin + commit with a record (full: 100,000 keys and records)', () => {
      counter += 1;
      void handled(memory.begin(`k${counter}`, `action:${counter}`), journalRecord);
    })
    .add('SqliteStore begin + commit with a record, one at a time (one fsync)', async () => {
      counter += 1;
      await handled(sqlite.begin(`k${counter}`, `action:${counter}`), journalRecord);
    })
    .add('emit (one listener, as the router calls it)', () => {
      const failures = runListeners(emitter, 'action', [normalized]);
      if (!Array.isArray(failures)) throw new Error('the listener should have answered synchronously');
    });
  await bench.run();
  sqlite.close();
  rmSync(dir, { recursive: true, force: true });
  const results: StageResults = {};
  for (const task of bench.tasks) {
    const throughput = task.result as { throughput?: { mean: number }; hz?: number } | undefined;
    results[task.name] = Math.round(throughput?.throughput?.mean ?? throughput?.hz ?? 0);
  }
  return results;
}

/** Commits a claim a synchronous store gave, as the router does once listeners succeeded. */
/** Commits a claim the store gave synchronously; gives the commit's promise where it has one. */
function handled(
  result: BeginResult<undefined> | Promise<BeginResult<undefined>>,
  record: Record<string, string>,
): void | Promise<void> {
  if (typeof result !== 'object' || result instanceof Promise) throw new Error('expected a synchronous claim');
  return result.commit(record, 'delivered');
}

export function printStageTable(results: StageResults): void {
  console.log(
    [
      '| stage | ops/s |',
      '| --- | ---: |',
      ...Object.entries(results).map(([name, ops]) => `| ${name} | ${ops.toLocaleString('en-US')} |`),
    ].join('\n'),
  );
}
