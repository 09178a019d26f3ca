import { isPostbackError } from '../errors';
import type { ActionState } from '../events';
import { reconcileActions, type ReconcileFinding, type ReconcileReport } from '../reconcile/reconcile';
import { asFlags, openStore, StoreUsageError, type StoreArguments } from './open-store';

export interface ReconcileCommand extends StoreArguments {
  readonly accountSid: string | undefined;
  readonly since: string | undefined;
  readonly until: string | undefined;
  readonly baseUrl: string | undefined;
  readonly pageSize: string | undefined;
  readonly json: boolean;
}

/**
 * `impact-postbacks reconcile`: compares the actions impact.com's API lists with a store's
 * journal and prints what the journal lacks or has differently. It delivers nothing: a shell
 * has no listeners; a router's `postbacks.reconcile()` does. Exit 1 when anything is missing or
 * changed (or the API or the store failed), 0 when all agree.
 */
export async function reconcileCommand(command: ReconcileCommand, env: NodeJS.ProcessEnv): Promise<number> {
  if (command.accountSid === undefined || command.accountSid === '')
    throw new StoreUsageError('--account-sid is required');
  const authToken = env['IMPACT_AUTH_TOKEN'];
  if (authToken === undefined || authToken === '') {
    throw new StoreUsageError(
      'set the auth token in the IMPACT_AUTH_TOKEN environment variable (never on the command line)',
    );
  }
  const since = dateArgument('since', command.since, true);
  const until = dateArgument('until', command.until, false);
  const pageSize = command.pageSize === undefined ? undefined : Number(command.pageSize);
  if (pageSize !== undefined && !Number.isSafeInteger(pageSize))
    throw new StoreUsageError('--page-size must be an integer');
  const options = {
    accountSid: command.accountSid,
    authToken,
    since,
    ...(until === undefined ? {} : { until }),
    ...(command.baseUrl === undefined ? {} : { baseUrl: command.baseUrl }),
    ...(pageSize === undefined ? {} : { pageSize }),
  };
  const { store, close } = openStore(command);
  const findings: ReconcileFinding[] = [];
  let report: ReconcileReport;
  try {
    // The journal is read once before the API, so that a store that is not there (a typo in
    // --schema) fails at once, naming what is missing, instead of after the API's pages.
    await store.readJournal(['action:']);
    report = await reconcileActions(options, {
      readJournal: (subjects) => store.readJournal(subjects),
      ordering: 'final-states',
      onFinding: (finding) => {
        if (finding.kind !== 'unchanged') findings.push(finding);
      },
    });
  } catch (error) {
    if (error instanceof TypeError) throw new StoreUsageError(asFlags(error.message));
    const why = isPostbackError(error) ? `${error.code}: ${error.message}` : (error as Error).message;
    console.error(`impact-postbacks: reconcile failed: ${why}`);
    return 1;
  } finally {
    await close();
  }
  const { delivered: _delivered, failed: _failed, ...counts } = report;
  if (command.json) {
    console.log(JSON.stringify({ ...counts, actions: findings.map(printable) }, null, 2));
  } else {
    for (const finding of findings) console.log(line(finding));
    console.log(
      `checked ${counts.checked}: ${counts.missing} missing, ${counts.changed} changed, ${counts.stale} stale, ${counts.unchanged} unchanged (${counts.pages} pages, ${counts.requests} requests)`,
    );
  }
  return counts.missing + counts.changed > 0 ? 1 : 0;
}

function dateArgument(name: string, value: string | undefined, required: true): Date;
function dateArgument(name: string, value: string | undefined, required: false): Date | undefined;
function dateArgument(name: string, value: string | undefined, required: boolean): Date | undefined {
  if (value === undefined) {
    if (required) throw new StoreUsageError(`--${name} is required, such as --${name} 2026-11-01`);
    return undefined;
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new StoreUsageError(`--${name} must be a date such as 2026-11-01 or 2026-11-01T12:00:00Z, got "${value}"`);
  }
  return date;
}

interface StateFields {
  readonly status?: string | null;
  readonly payout?: string | null;
  readonly currency?: string | null;
}

function stateText(state: StateFields): string {
  return `${state.status ?? '-'} ${state.payout ?? '-'} ${state.currency ?? ''}`.trim();
}

function line({ kind, event, previous }: ReconcileFinding): string {
  const now = stateText(event);
  const before = previous === null ? '' : `${stateText(previous)} → `;
  return `${kind.padEnd(8)} ${event.actionId}  ${before}${now}`;
}

function printable({ kind, event, previous }: ReconcileFinding): Record<string, unknown> {
  const state = (from: ActionState | null) =>
    from === null ? null : { status: from.status, payout: from.payout, amount: from.amount, currency: from.currency };
  return {
    kind,
    actionId: event.actionId,
    api: {
      status: event.status ?? null,
      payout: event.payout ?? null,
      amount: event.amount ?? null,
      currency: event.currency ?? null,
    },
    journal: state(previous),
  };
}
