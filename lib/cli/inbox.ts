import type { InboxRow, InboxStatus } from '../stores/store';
import { openStore, StoreUsageError, type StoreArguments } from './open-store';

export interface InboxCommand extends StoreArguments {
  readonly action: string | undefined;
  readonly status: string | undefined;
  readonly limit: string | undefined;
  readonly id: string | undefined;
  readonly dead: boolean;
  readonly json: boolean;
}

const STATUSES: readonly InboxStatus[] = ['pending', 'retrying', 'delivered', 'dead'];

/** A row as the command prints it: its fields as received, parsed. */
function printable(row: InboxRow): Record<string, unknown> {
  const { fields, ...rest } = row;
  return { ...rest, fields: JSON.parse(fields) as unknown };
}

function idOf(row: InboxRow): string {
  const fields = JSON.parse(row.fields) as Record<string, unknown>;
  const id = fields['ActionId'] ?? fields['actionId'] ?? fields['InquiryId'] ?? fields['Id'] ?? row.subject ?? '-';
  return typeof id === 'string' ? id : JSON.stringify(id);
}

/** `impact-postbacks inbox stats|list|retry`: what the inbox holds, and dead rows tried again. */
export async function inboxCommand(command: InboxCommand): Promise<number> {
  if (command.action !== 'stats' && command.action !== 'list' && command.action !== 'retry') {
    throw new StoreUsageError('inbox needs one of stats, list or retry');
  }
  const status = command.status;
  if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
    throw new StoreUsageError(`--status must be one of ${STATUSES.join(', ')}, got "${status}"`);
  }
  const limit = command.limit === undefined ? 50 : Number(command.limit);
  if (!Number.isSafeInteger(limit) || limit < 1) throw new StoreUsageError('--limit must be a positive integer');
  if (command.action === 'retry' && (command.id === undefined) === !command.dead) {
    throw new StoreUsageError('retry needs --id <row> or --dead, one of them');
  }
  const id = command.id === undefined ? undefined : Number(command.id);
  if (id !== undefined && (!Number.isSafeInteger(id) || id < 1)) throw new StoreUsageError('--id must be a row id');
  const { store, close } = openStore(command);
  const { inbox } = store;
  try {
    switch (command.action) {
      case 'stats': {
        const stats = await inbox.stats();
        if (command.json) console.log(JSON.stringify(stats));
        else {
          for (const name of STATUSES) console.log(`${name.padEnd(10)} ${stats[name]}`);
          const age = stats.oldestPendingAgeMs;
          console.log(`oldest waiting: ${age === null ? 'none' : `${(age / 1000).toFixed(1)} s`}`);
        }
        return 0;
      }
      case 'list': {
        const rows = await inbox.list({ limit, ...(status === undefined ? {} : { status: status as InboxStatus }) });
        if (command.json) console.log(JSON.stringify(rows.map(printable), null, 2));
        else {
          for (const row of rows) {
            console.log(
              `${String(row.id).padStart(6)} ${row.status.padEnd(9)} ${String(row.attempts).padStart(2)} ${row.receivedAt.toISOString()} ${row.route.padEnd(9)} ${row.format.padEnd(5)} ${idOf(row)}${row.lastError === null ? '' : `  ${row.lastError}`}`,
            );
          }
          console.log(`${rows.length} row${rows.length === 1 ? '' : 's'}`);
        }
        return 0;
      }
      case 'retry': {
        const retried = await inbox.retry(id ?? { status: 'dead' });
        console.log(
          command.json ? JSON.stringify({ retried }) : `${retried} row${retried === 1 ? '' : 's'} pending again`,
        );
        return 0;
      }
    }
  } catch (error) {
    console.error(
      `impact-postbacks: inbox ${command.action} failed: ${error instanceof Error ? error.message : String(error)}`,
    );
    return 1;
  } finally {
    await close();
  }
}
