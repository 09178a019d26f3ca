#!/usr/bin/env node
/**
 * impact-postbacks: templates to paste into impact.com, a postback simulator, and an end-to-end
 * check of a deployed receiver. Exit codes: 0 success, 1 an answer was not as expected, 2 usage.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { deliverPostback, errorCodeOf } from './deliver';
import { historyCommand } from './history';
import { inboxCommand } from './inbox';
import { StoreUsageError, type StoreArguments } from './open-store';
import { migrate, MigrateUsageError } from './migrate';
import { reconcileCommand } from './reconcile';
import { SCENARIOS, scenarioSteps, type ScenarioName } from './scenarios';
import { buildTemplate, formatTemplate, KINDS, TEMPLATE_FORMATS, type Kind, type TemplateFormat } from './templates';

class UsageError extends Error {}

const HELP: Readonly<Record<string, string>> = {
  main: `Usage: impact-postbacks <command> [options]

Commands:
  templates   print what to paste into impact.com's Event Notifications screen
  send        play postbacks as impact.com would send them (a simulator)
  check       send one harmless postback per route and format, and report what is accepted
  migrate     create PostgresStore's tables in a PostgreSQL database, or print their DDL
  inbox       what the inbox of delivery: 'inbox' holds (stats, list), and retry rows
  reconcile   compare impact.com's Actions API with a store's journal: what postbacks never brought
  history     what became of each postback, from a router's history (option history)

Run "impact-postbacks <command> --help" for a command's options, "impact-postbacks --version"
for the version.`,
  templates: `Usage: impact-postbacks templates --url <base URL> [options]

Prints, for each event kind, the URL (with {Placeholder} tokens for GET) or the URL, body format
and body template (for POST) to paste into impact.com, using every known placeholder of the kind.

Options:
  --url <url>           where the router is mounted, such as https://shop.example/impact (required)
  --kind <kind>         action, clearing, inquiry or catalog (default: all four)
  --format <format>     query (GET), json, xml or form (default: query)
  --token-param [value] add token=<value> to each URL (default value: YOUR_TOKEN)
  --token <token>       the value for --token-param (the same as --token-param <token>)
  --json                print one JSON array of { kind, format, method, url, contentType?, body? }
  --help                show this help`,
  send: `Usage: impact-postbacks send --url <base URL> --scenario <name> [options]

Sends postbacks with realistic values, as impact.com would, and prints one line per request.

Scenarios: tracked, lifecycle (tracked, modified, reversed), cleared, inquiry (created, resolved),
           catalog, retry (the same postback three times: the receiver answers the copies as
           duplicates, and the line says so), all

Options:
  --url <url>           where the router is mounted, such as http://localhost:3000/impact (required)
  --scenario <name>     which postbacks to send (required)
  --format <format>     query (GET), json, xml or form (default: query)
  --token <token>       send ?token=<token>
  --help                show this help

Exit code 1 if any answer was not a 2xx.`,
  check: `Usage: impact-postbacks check --url <base URL> [options]

Sends one harmless postback (payout 0.00, status detail TEST_ACTION) per route and format, and
reports whether the receiver accepts it: the end-to-end check to run after deploying. The
postbacks reach your listeners like any other (ignore statusDetail 'TEST_ACTION' there), and
the receiver accepts them only from an address in its allowedIps: run it from such a host.

Options:
  --url <url>           where the router is mounted (required)
  --token <token>       send ?token=<token>
  --help                show this help

Exit code 1 if any route and format was not accepted.`,
  migrate: `Usage: impact-postbacks migrate [--database-url <url>] [options]

Creates PostgresStore's tables (<prefix>keys, the dedupe keys; <prefix>journal, each action's
last state; <prefix>inbox, for delivery: 'inbox', and <prefix>inbox_attempts, the attempts
each row began; <prefix>history, for option history), their indexes and the store's three functions (<prefix>begin_v5,
<prefix>inbox_add_v5, <prefix>inbox_next_v5), and the schema unless it is
public, unless they are in place; or prints their DDL for your own migrations. Prints every
object it made or found. Safe to run again, and while routers run. A store creates them on its
first claim too, if its user may (unless created with create: false).

Options:
  --database-url <url>  the database, such as postgres://app@db.internal:5432/shop
                        (default: the DATABASE_URL environment variable, which keeps a
                        password out of the process list)
  --schema <name>       the schema of the tables (default: public)
  --table-prefix <p>    prefix of the table names (default: impact_postbacks_)
  --print               print the DDL instead of applying it (no database needed)
  --help                show this help

Exit code 1 if the database could not be reached or refused the DDL.`,
  inbox: `Usage: impact-postbacks inbox <stats|list|retry> (--database-url <url> | --sqlite <file>) [options]

Looks into the inbox of a router with delivery: 'inbox', and makes rows pending again.

  stats                 how many rows are pending, retrying, dead and delivered
  list                  rows, newest first: id, status, attempts, arrival, route, format, id, last error
  retry --id <row>      make one row pending again, its attempts reset
  retry --dead          make every dead row pending again (after fixing what failed)

Options:
  --database-url <url>  PostgresStore's database (default: the DATABASE_URL environment variable)
  --schema <name>       PostgresStore's schema (default: public)
  --table-prefix <p>    PostgresStore's table prefix (default: impact_postbacks_)
  --sqlite <file>       SqliteStore's file
  --status <status>     list only pending, retrying, delivered or dead rows
  --limit <n>           list at most n rows (default: 50)
  --json                print JSON
  --help                show this help

Exit code 1 if the store could not be read.`,
  reconcile: `Usage: impact-postbacks reconcile --account-sid <sid> --since <date> (--database-url <url> | --sqlite <file>) [options]

Lists the actions impact.com's Actions API shows as updated in the range, compares each with the
store's journal, and prints those the journal lacks (missing), has with another status, payout,
amount or currency (changed), or would move back from a final state (stale). It delivers nothing:
a router's postbacks.reconcile() does. The auth token is read from IMPACT_AUTH_TOKEN only.

Options:
  --account-sid <sid>   the partner account's SID (required)
  --since <date>        actions last updated from this date or time, such as 2026-11-01 (required)
  --until <date>        ...up to this one (default: now); ranges over 45 days are cut in windows
  --base-url <url>      the API (default: https://api.impact.com)
  --page-size <n>       actions per request (default: 1000)
  --database-url <url>  PostgresStore's database (default: the DATABASE_URL environment variable)
  --schema <name>       PostgresStore's schema (default: public)
  --table-prefix <p>    PostgresStore's table prefix (default: impact_postbacks_)
  --sqlite <file>       SqliteStore's file
  --json                print the counts and the differing actions as JSON
  --help                show this help

Exit code 1 if anything is missing or changed, or the API or the store failed; 0 if all agree.`,
  history: `Usage: impact-postbacks history (--database-url <url> | --sqlite <file>) [options]

Prints what a router with option history recorded, newest first: id, arrival, trigger (postback,
inbox, reconciliation), route, outcome, status, error code, action id and subId1.

Options:
  --action <id>         entries of this action only
  --sub-id1 <value>     entries of this subId1 only
  --outcome <outcome>   delivered, duplicate, stale, stored, rejected or failed
  --since <date>        entries received from this date or time, such as 2026-11-01
  --limit <n>           at most n entries (default: 50, at most 1000)
  --database-url <url>  PostgresStore's database (default: the DATABASE_URL environment variable)
  --schema <name>       PostgresStore's schema (default: public)
  --table-prefix <p>    PostgresStore's table prefix (default: impact_postbacks_)
  --sqlite <file>       SqliteStore's file
  --json                print one JSON object per entry and line, with every field as received
  --help                show this help

Exit code 1 if the store could not be read.`,
};

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[], fallback?: T): T {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required (one of ${allowed.join(', ')})`);
    return fallback;
  }
  if (!(allowed as readonly string[]).includes(value))
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got "${value}"`);
  return value as T;
}

function requireUrl(value: string | undefined): string {
  if (value === undefined) throw new UsageError('--url is required, such as --url http://localhost:3000/impact');
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
  } catch {
    throw new UsageError(`--url must be an http or https URL, got "${value}"`);
  }
  return value;
}

/** Stands for a bare `--token-param`: no argument can hold a NUL character. */
const BARE = '\u0000';

/**
 * `--token-param` takes a value or none (then YOUR_TOKEN); parseArgs knows only one or the
 * other, so a bare `--token-param` gets a value written in before parsing that no argument can be.
 */
function withTokenParamValue(args: readonly string[]): string[] {
  return args.flatMap((arg, index) => {
    const next = args[index + 1];
    return arg === '--token-param' && (next === undefined || next.startsWith('--')) ? [arg, BARE] : [arg];
  });
}

/**
 * A token given empty is a mistake, most often an unset shell variable (`--token "$TOKEN"`):
 * refused, where it would have become YOUR_TOKEN or an empty token without a word.
 */
function tokenValue(name: string, value: string | undefined): string | undefined {
  if (value === '') throw new UsageError(`--${name} is empty (an unset shell variable?): give the token`);
  return value;
}

function templates(args: string[]): number {
  const { values } = parseArgs({
    args: withTokenParamValue(args),
    options: {
      url: { type: 'string' },
      kind: { type: 'string' },
      format: { type: 'string' },
      'token-param': { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return help('templates');
  const url = requireUrl(values.url);
  const kinds: readonly Kind[] = values.kind === undefined ? KINDS : [oneOf('kind', values.kind, KINDS)];
  const format = oneOf<TemplateFormat>('format', values.format, TEMPLATE_FORMATS, 'query');
  const tokenParam = tokenValue('token-param', values['token-param']);
  const tokenGiven = tokenValue('token', values.token);
  if (tokenGiven !== undefined && tokenParam === undefined) {
    console.error('impact-postbacks: warning: --token does nothing without --token-param; the URLs carry no token');
  }
  const token = tokenParam === undefined ? null : tokenParam === BARE ? (tokenGiven ?? 'YOUR_TOKEN') : tokenParam;
  const list = kinds.map((kind) => buildTemplate(url, kind, format, token));
  if (values.json === true) {
    console.log(
      JSON.stringify(
        list.map(({ label: _label, ...template }) => template),
        null,
        2,
      ),
    );
  } else {
    console.log(list.map(formatTemplate).join('\n\n'));
  }
  return 0;
}

async function send(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      url: { type: 'string' },
      scenario: { type: 'string' },
      format: { type: 'string' },
      token: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return help('send');
  const token = tokenValue('token', values.token) ?? null;
  const url = requireUrl(values.url);
  const scenario = oneOf<ScenarioName>('scenario', values.scenario, SCENARIOS);
  const format = oneOf<TemplateFormat>('format', values.format, TEMPLATE_FORMATS, 'query');
  const seed = `${Date.now() % 1e9}${Math.floor(Math.random() * 1000)}`;
  let failed = 0;
  const results: (string | null)[] = [];
  const steps = scenarioSteps(scenario, seed);
  for (const step of steps) {
    const result = await deliverPostback(url, step.kind, format, step.fields, token).catch((error: unknown) => ({
      status: 0,
      ms: 0,
      body: error instanceof Error ? error.message : String(error),
      url,
      method: format === 'query' ? 'GET' : 'POST',
      outcome: null,
    }));
    const ok = result.status >= 200 && result.status < 300;
    if (!ok) failed += 1;
    results.push(result.outcome);
    const detail = ok
      ? result.outcome === 'duplicate'
        ? '  (duplicate: handled before, not delivered again)'
        : ''
      : `  ${errorCodeOf(result.body) || result.body.slice(0, 120)}`;
    console.log(
      `${ok ? 'ok  ' : 'FAIL'} ${String(result.status).padStart(3)} ${String(result.ms).padStart(5)} ms  ${result.method.padEnd(4)} ${step.kind.padEnd(8)} ${step.name}${detail}`,
    );
  }
  const duplicates = results.filter((outcome) => outcome === 'duplicate').length;
  console.log(
    `${steps.length} sent, ${steps.length - failed} answered 2xx${duplicates === 0 ? '' : ` (${duplicates} as duplicates)`}, ${failed} not`,
  );
  return failed === 0 ? 0 : 1;
}

async function check(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { url: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help === true) return help('check');
  const token = tokenValue('token', values.token) ?? null;
  const url = requireUrl(values.url);
  const stamp = `check-${Date.now()}`;
  const harmless: Readonly<Record<Kind, Record<string, string>>> = {
    action: {
      ActionId: `${stamp}.1`,
      Status: 'PENDING',
      StatusDetail: 'TEST_ACTION',
      Payout: '0.00',
      Amount: '0.00',
      Currency: 'USD',
    },
    clearing: {
      ActionId: `${stamp}.2`,
      Status: 'APPROVED',
      StatusDetail: 'TEST_ACTION',
      Payout: '0.00',
      Currency: 'USD',
    },
    inquiry: { InquiryId: `${stamp}.3`, ResolutionStatus: 'UNRESOLVED', InquiryNotes: 'impact-postbacks check' },
    catalog: { CampaignId: '0', CatalogId: stamp },
  };
  let failed = 0;
  for (const kind of KINDS) {
    for (const format of TEMPLATE_FORMATS) {
      // A distinct id per format, so a receiver that deduplicates still sees each one.
      const fields = Object.fromEntries(
        Object.entries(harmless[kind]).map(([key, value]) => [
          key,
          value.startsWith(stamp) ? `${value}.${format}` : value,
        ]),
      );
      const result = await deliverPostback(url, kind, format, fields, token).catch((error: unknown) => ({
        status: 0,
        ms: 0,
        body: String(error),
        url,
        method: 'GET' as const,
        outcome: null,
      }));
      const ok = result.status >= 200 && result.status < 300;
      if (!ok) failed += 1;
      console.log(
        `${ok ? 'accepted' : 'REFUSED '} ${kind.padEnd(8)} ${format.padEnd(5)} ${String(result.status).padStart(3)} ${String(result.ms).padStart(5)} ms${ok ? '' : `  ${errorCodeOf(result.body) || result.body.slice(0, 120)}`}`,
      );
    }
  }
  console.log(
    failed === 0
      ? 'every route accepts every format'
      : `${failed} of ${KINDS.length * TEMPLATE_FORMATS.length} route and format pairs refused`,
  );
  console.log(
    "These postbacks reached the receiver's listeners, marked statusDetail 'TEST_ACTION' (payout 0.00); the\n" +
      'receiver accepts postbacks only from addresses in its allowedIps, so run this from such an address.',
  );
  return failed === 0 ? 0 : 1;
}

async function runMigrate(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'database-url': { type: 'string' },
      schema: { type: 'string' },
      'table-prefix': { type: 'string' },
      print: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return help('migrate');
  try {
    return await migrate({
      databaseUrl: values['database-url'] ?? process.env['DATABASE_URL'],
      schema: values.schema,
      tablePrefix: values['table-prefix'],
      print: values.print === true,
    });
  } catch (error) {
    if (error instanceof MigrateUsageError) throw new UsageError(error.message);
    throw error;
  }
}

/** The flags that name a router's store, shared by the commands that look into one. */
const STORE_OPTIONS = {
  'database-url': { type: 'string' },
  sqlite: { type: 'string' },
  schema: { type: 'string' },
  'table-prefix': { type: 'string' },
} as const;

function storeArguments(values: {
  readonly 'database-url'?: string | undefined;
  readonly sqlite?: string | undefined;
  readonly schema?: string | undefined;
  readonly 'table-prefix'?: string | undefined;
}): StoreArguments {
  return {
    // DATABASE_URL keeps a password out of the process list; --sqlite names the other store.
    databaseUrl: values['database-url'] ?? (values.sqlite === undefined ? process.env['DATABASE_URL'] : undefined),
    sqlite: values.sqlite,
    schema: values.schema,
    tablePrefix: values['table-prefix'],
  };
}

async function runInbox(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      status: { type: 'string' },
      limit: { type: 'string' },
      id: { type: 'string' },
      dead: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help === true) return help('inbox');
  if (positionals.length > 1) throw new UsageError(`inbox takes one action, got ${positionals.join(' ')}`);
  try {
    return await inboxCommand({
      action: positionals[0],
      ...storeArguments(values),
      status: values.status,
      limit: values.limit,
      id: values.id,
      dead: values.dead === true,
      json: values.json === true,
    });
  } catch (error) {
    if (error instanceof StoreUsageError) throw new UsageError(error.message);
    throw error;
  }
}

async function runReconcile(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'account-sid': { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      'base-url': { type: 'string' },
      'page-size': { type: 'string' },
      ...STORE_OPTIONS,
      json: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return help('reconcile');
  try {
    return await reconcileCommand(
      {
        accountSid: values['account-sid'],
        since: values.since,
        until: values.until,
        baseUrl: values['base-url'],
        pageSize: values['page-size'],
        ...storeArguments(values),
        json: values.json === true,
      },
      process.env,
    );
  } catch (error) {
    if (error instanceof StoreUsageError) throw new UsageError(error.message);
    throw error;
  }
}

async function runHistory(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...STORE_OPTIONS,
      action: { type: 'string' },
      'sub-id1': { type: 'string' },
      outcome: { type: 'string' },
      since: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help === true) return help('history');
  try {
    return await historyCommand({
      ...storeArguments(values),
      action: values.action,
      subId1: values['sub-id1'],
      outcome: values.outcome,
      since: values.since,
      limit: values.limit,
      json: values.json === true,
    });
  } catch (error) {
    if (error instanceof StoreUsageError) throw new UsageError(error.message);
    throw error;
  }
}

function help(command: string): number {
  console.log(HELP[command] ?? HELP['main']);
  return 0;
}

function printVersion(): number {
  // lib/cli/ in the sources and dist/cli/ in the package: the manifest is two folders up.
  const manifest = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  console.log(manifest.version);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'templates':
        return templates(args);
      case 'send':
        return await send(args);
      case 'check':
        return await check(args);
      case 'migrate':
        return await runMigrate(args);
      case 'inbox':
        return await runInbox(args);
      case 'reconcile':
        return await runReconcile(args);
      case 'history':
        return await runHistory(args);
      case '--version':
      case '-v':
      case 'version':
        return printVersion();
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        return help('main');
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true) {
      console.error(
        `impact-postbacks: ${(error as Error).message}\nRun "impact-postbacks ${command !== undefined && command in HELP ? `${command} ` : ''}--help" for usage.`,
      );
      return 2;
    }
    throw error;
  }
}

void main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`impact-postbacks: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
