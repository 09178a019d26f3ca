import express, { type Express, type Request } from 'express';
import {
  createPostbackConsole,
  createPostbackRouter,
  PostgresStore,
  type PostbackEvent,
  type PostbackRouter,
  type Rejection,
} from 'impact-postbacks';
import { Pool, type PoolClient } from 'pg';
import { Counter, Histogram, Registry } from 'prom-client';
import { MemoryLedger, type Ledger } from './ledger';
import { renderPage, type LoggedPostback } from './page';
import { PostgresLedger } from './postgres-ledger';

export type { LoggedPostback } from './page';

export interface ExampleApp {
  readonly app: Express;
  readonly postbacks: PostbackRouter<unknown>;
  readonly ledger: Ledger<unknown>;
  readonly log: LoggedPostback[];
  /** Which store and ledger it runs on. */
  readonly storage: 'memory' | 'postgres';
  /**
   * Shuts down: new postbacks get 503, those being handled finish (up to `timeoutMs`), then the
   * store and the database pool are closed.
   */
  close(timeoutMs?: number): Promise<void>;
}

export interface ExampleOptions {
  /** Who may send; loopback by default so `npm run example` works with no set-up. */
  readonly allowedIps?: readonly string[];
  /** Where log lines go; console by default. */
  readonly print?: (line: string) => void;
  /**
   * A PostgreSQL database: the router then runs on PostgresStore, and the ledger is a table
   * written in the store's transaction. Without it, both live in memory.
   */
  readonly databaseUrl?: string;
  /** The schema for the store's and the ledger's tables. Default `public`. */
  readonly schema?: string;
}

function summarise(event: PostbackEvent): string {
  switch (event.kind) {
    case 'action':
      return `action ${event.actionId} ${event.trigger} ${event.status ?? '-'} payout ${event.payout ?? '-'} ${event.currency ?? ''} for ${event.subId1 ?? '(no subId1)'}`;
    case 'inquiry':
      return `inquiry ${event.inquiryId} ${event.state} ${event.resolutionStatus ?? ''}`;
    case 'catalog':
      return `catalog ${event.catalogId ?? '-'} of campaign ${event.campaignId ?? '-'}`;
  }
}

/**
 * A small cashback site: it mounts the router at /impact (loopback only by default), credits
 * the user named by subId1 with the difference each postback makes (ctx.previous), marks
 * cleared actions, tracks inquiries, and shows balances and the last 50 postbacks at /.
 */
export async function createExampleApp(options: ExampleOptions = {}): Promise<ExampleApp> {
  const print =
    options.print ??
    ((line: string) => {
      console.log(line);
    });
  const allowedIps = options.allowedIps ?? ['127.0.0.1', '::1'];
  const log: LoggedPostback[] = [];
  const app = express();
  app.disable('x-powered-by');

  if (options.databaseUrl === undefined) {
    const ledger = new MemoryLedger();
    const postbacks = createPostbackRouter({ allowedIps, history: true });
    wire(postbacks, ledger, log, print);
    serve(app, postbacks, ledger, log);
    const close = (timeoutMs?: number) => postbacks.close(timeoutMs === undefined ? {} : { timeoutMs });
    return { app, postbacks, ledger, log, storage: 'memory', close };
  }

  const schema = options.schema ?? 'public';
  const pool = new Pool({ connectionString: options.databaseUrl });
  // A broken idle connection is dropped by the pool; the event must not end the process.
  pool.on('error', () => undefined);
  const ledger = new PostgresLedger(pool, schema);
  await ledger.createTables();
  // The pool's own client type, so that listeners see ctx.transaction as pg's PoolClient.
  const postbacks = createPostbackRouter({
    allowedIps,
    store: new PostgresStore<PoolClient>({ pool, schema }),
    history: true,
  });
  wire(postbacks, ledger, log, print);
  serve(app, postbacks, ledger, log);
  const close = async (timeoutMs?: number) => {
    // The store was given the pool, so closing it leaves the pool to its owner: here.
    await postbacks.close(timeoutMs === undefined ? {} : { timeoutMs });
    await pool.end();
  };
  return { app, postbacks, ledger, log, storage: 'postgres', close };
}

/** How `impact-postbacks check` marks its test postbacks: an action's status detail, an inquiry's notes. */
const CHECK_STATUS_DETAIL = 'TEST_ACTION';
const CHECK_INQUIRY_NOTES = 'impact-postbacks check';

/** Subscribes the ledger and the log to the router's events. */
function wire<T>(
  postbacks: PostbackRouter<T>,
  ledger: Ledger<T>,
  log: LoggedPostback[],
  print: (line: string) => void,
): void {
  const record = (event: PostbackEvent, status: string): void => {
    const entry: LoggedPostback = {
      at: event.meta.receivedAt.toISOString(),
      kind: event.kind === 'action' ? `action (${event.trigger})` : event.kind,
      format: event.meta.format,
      status,
      summary: summarise(event),
      warnings: event.warnings.map((warning) => warning.message),
    };
    log.unshift(entry);
    log.length = Math.min(log.length, 50);
    print(
      `${entry.at} ${entry.format.padEnd(5)} ${status.padEnd(9)} ${entry.summary}${entry.warnings.length > 0 ? ` (${entry.warnings.join('; ')})` : ''}`,
    );
  };
  postbacks.on('action', async (event, ctx) => {
    // `impact-postbacks check` sends test postbacks (payout 0.00) marked so: shown, never credited.
    if (event.statusDetail === CHECK_STATUS_DETAIL) {
      record(event, 'test postback (check), not credited');
      return;
    }
    await ledger.applyAction(event, ctx);
    record(event, event.status ?? 'handled');
  });
  postbacks.on('inquiry', async (event, ctx) => {
    if (event.inquiryNotes === CHECK_INQUIRY_NOTES) {
      record(event, 'test postback (check), not recorded');
      return;
    }
    await ledger.applyInquiry(event, ctx);
    record(event, event.state);
  });
  postbacks.on('catalog', (event) => {
    record(event, 'handled');
  });
  postbacks.on('stale', (event, ctx) => {
    // A late copy of an older state: the action is already final (or the inquiry resolved),
    // nothing is credited.
    const kept = ctx.previous === null ? null : 'status' in ctx.previous ? ctx.previous.status : ctx.previous.state;
    record(event, `stale (already ${kept ?? 'final'})`);
  });
  postbacks.on('duplicate', (event) => {
    record(event, 'duplicate');
  });
  postbacks.on('rejected', (rejection: Rejection) => {
    print(`rejected ${rejection.status} ${rejection.code} from ${rejection.ip ?? 'unknown'}: ${rejection.message}`);
  });
  postbacks.on('error', (error) => {
    print(`error ${error.code}: ${error.message}`);
  });
}

/**
 * Prometheus metrics from the router's `handled` event: a counter of answered postbacks by route
 * and outcome, and a histogram of how long they took. A registry per app, not prom-client's
 * global one, so that several apps in one process (the tests) keep their own counts.
 */
function metrics<T>(postbacks: PostbackRouter<T>): Registry {
  const registry = new Registry();
  const answered = new Counter({
    name: 'impact_postbacks_requests_total',
    help: 'Postback requests answered, by route and outcome',
    labelNames: ['route', 'outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'impact_postbacks_request_duration_ms',
    help: 'Time from arrival to answer of a postback request, in ms',
    labelNames: ['route'] as const,
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10_000],
    registers: [registry],
  });
  postbacks.on('handled', ({ route, outcome, durationMs }) => {
    answered.inc({ route, outcome });
    duration.observe({ route }, durationMs);
  });
  return registry;
}

/** Loopback only: the example has no login, and the console shows every postback's fields. */
function fromLoopback(req: Request): boolean {
  const address = req.socket.remoteAddress ?? '';
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

function serve<T>(app: Express, postbacks: PostbackRouter<T>, ledger: Ledger<T>, log: readonly LoggedPostback[]): void {
  app.use('/impact', postbacks.router);
  app.use('/console', createPostbackConsole(postbacks, { authorize: fromLoopback }));
  const registry = metrics(postbacks);
  app.get('/metrics', (_req, res, next) => {
    registry.metrics().then((text) => {
      res.type(registry.contentType).send(text);
    }, next);
  });
  app.get('/', (_req, res, next) => {
    Promise.all([ledger.balances(), ledger.inquiries()]).then(([balances, inquiries]) => {
      res.type('html').send(renderPage(balances, inquiries, log));
    }, next);
  });
  app.get('/balances.json', (_req, res, next) => {
    ledger.balances().then((balances) => {
      res.json({ balances, postbacks: log });
    }, next);
  });
}
