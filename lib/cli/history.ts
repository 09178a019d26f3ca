import type { HistoryEntry, HistoryOutcome, HistoryQuery } from '../history/history-entry';
import { HISTORY_OUTCOMES, MAX_PAGE_SIZE, toHistoryFilter } from '../history/history-query';
import { openStore, StoreUsageError, type StoreArguments } from './open-store';

export interface HistoryCommand extends StoreArguments {
  readonly action: string | undefined;
  readonly subId1: string | undefined;
  readonly outcome: string | undefined;
  readonly since: string | undefined;
  readonly limit: string | undefined;
  readonly json: boolean;
}

/** The command line's query, checked: a mistake is a usage error naming the flag. */
function queryOf(command: HistoryCommand): HistoryQuery {
  const { outcome } = command;
  if (outcome !== undefined && !(HISTORY_OUTCOMES as readonly string[]).includes(outcome)) {
    throw new StoreUsageError(`--outcome must be one of ${HISTORY_OUTCOMES.join(', ')}, got "${outcome}"`);
  }
  const since = command.since === undefined ? undefined : new Date(command.since);
  if (since !== undefined && Number.isNaN(since.getTime())) {
    throw new StoreUsageError(`--since must be a date or time such as 2026-11-01, got "${command.since ?? ''}"`);
  }
  const limit = command.limit === undefined ? 50 : Number(command.limit);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new StoreUsageError(`--limit must be a whole number from 1 to ${MAX_PAGE_SIZE}`);
  }
  for (const [flag, value] of [
    ['--action', command.action],
    ['--sub-id1', command.subId1],
  ] as const) {
    if (value === '') throw new StoreUsageError(`${flag} is empty (an unset shell variable?)`);
  }
  return {
    limit,
    ...(command.action === undefined ? {} : { actionId: command.action }),
    ...(command.subId1 === undefined ? {} : { subId1: command.subId1 }),
    ...(outcome === undefined ? {} : { outcome: outcome as HistoryOutcome }),
    ...(since === undefined ? {} : { since }),
  };
}

/** A sender's text as a terminal shows it: control characters (escape sequences) as `?`. */
function shown(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

function line(entry: HistoryEntry): string {
  const cells = [
    entry.id.padStart(8),
    entry.receivedAt.toISOString(),
    entry.trigger.padEnd(14),
    entry.route.padEnd(9),
    entry.outcome.padEnd(9),
    String(entry.status ?? '-').padStart(3),
    (entry.code ?? '-').padEnd(20),
    shown(entry.actionId ?? '-'),
    shown(entry.subId1 ?? '-'),
  ];
  return cells.join(' ');
}

/**
 * `impact-postbacks history`: what a router's history holds (option `history` on, SqliteStore or
 * PostgresStore), newest first, as a table or one JSON object per line.
 */
export async function historyCommand(command: HistoryCommand): Promise<number> {
  const query = queryOf(command);
  const { store, close } = openStore(command);
  try {
    const { history } = store;
    if (history === undefined) {
      throw new Error('this store has no history table: a router of this version with option history makes it');
    }
    // The command reads all the store holds: the retention is the router's to apply.
    const entries = await history.list(toHistoryFilter(query, new Date(0)));
    if (command.json) {
      for (const entry of entries) console.log(JSON.stringify(entry));
    } else {
      console.log(
        `${'id'.padStart(8)} ${'received'.padEnd(24)} ${'trigger'.padEnd(14)} ${'route'.padEnd(9)} ${'outcome'.padEnd(9)} ${'st'.padStart(3)} ${'code'.padEnd(20)} action subId1`,
      );
      for (const entry of entries) console.log(line(entry));
      console.log(`${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}`);
    }
    return 0;
  } catch (error) {
    console.error(`impact-postbacks: history failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await close();
  }
}
