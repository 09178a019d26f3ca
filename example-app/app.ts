import express, { type Express } from 'express';
import { createPostbackRouter, type PostbackEvent, type PostbackRouter, type Rejection } from 'impact-postbacks';
import { Ledger } from './ledger';
import { renderPage, type LoggedPostback } from './page';

export type { LoggedPostback } from './page';

export interface ExampleApp {
  readonly app: Express;
  readonly postbacks: PostbackRouter;
  readonly ledger: Ledger;
  readonly log: LoggedPostback[];
}

export interface ExampleOptions {
  /** Who may send; loopback by default so `npm run example` works with no set-up. */
  readonly allowedIps?: readonly string[];
  /** Where log lines go; console by default. */
  readonly print?: (line: string) => void;
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
 * the user named by subId1, adjusts and reverses, marks cleared actions, tracks inquiries, and
 * shows balances and the last 50 postbacks at /.
 */
export function createExampleApp(options: ExampleOptions = {}): ExampleApp {
  const print =
    options.print ??
    ((line: string) => {
      console.log(line);
    });
  const app = express();
  app.disable('x-powered-by');
  const postbacks = createPostbackRouter({ allowedIps: options.allowedIps ?? ['127.0.0.1', '::1'] });
  const ledger = new Ledger();
  const log: LoggedPostback[] = [];

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
  postbacks.on('action', (event) => {
    ledger.applyAction(event);
    record(event, event.status ?? 'handled');
  });
  postbacks.on('inquiry', (event) => {
    ledger.applyInquiry(event);
    record(event, event.state);
  });
  postbacks.on('catalog', (event) => {
    record(event, 'handled');
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

  app.use('/impact', postbacks.router);
  app.get('/', (_req, res) => {
    res.type('html').send(renderPage(ledger.balances(), ledger.allInquiries(), log));
  });
  app.get('/balances.json', (_req, res) => {
    res.json({ balances: ledger.balances(), postbacks: log });
  });
  return { app, postbacks, ledger, log };
}
