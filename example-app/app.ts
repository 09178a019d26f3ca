import express, { type Express } from 'express';
import { createPostbackRouter, type PostbackEvent, type PostbackRouter, type Rejection } from 'impact-postbacks';

/** One line of the example's log of what arrived. */
export interface LoggedPostback {
  readonly at: string;
  readonly kind: string;
  readonly format: string;
  readonly summary: string;
  readonly warnings: readonly string[];
}

export interface ExampleApp {
  readonly app: Express;
  readonly postbacks: PostbackRouter;
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

/** A small Express app that mounts the router at /impact and logs every postback. */
export function createExampleApp(options: ExampleOptions = {}): ExampleApp {
  const print =
    options.print ??
    ((line: string) => {
      console.log(line);
    });
  const app = express();
  app.disable('x-powered-by');
  const postbacks = createPostbackRouter({ allowedIps: options.allowedIps ?? ['127.0.0.1', '::1'] });
  const log: LoggedPostback[] = [];

  const record = (event: PostbackEvent): void => {
    const line = {
      at: event.meta.receivedAt.toISOString(),
      kind: event.kind,
      format: event.meta.format,
      summary: summarise(event),
      warnings: event.warnings.map((warning) => warning.message),
    };
    log.unshift(line);
    log.length = Math.min(log.length, 50);
    print(
      `${line.at} ${line.format.padEnd(5)} ${line.summary}${line.warnings.length > 0 ? ` (${line.warnings.join('; ')})` : ''}`,
    );
  };
  postbacks.on('action', record);
  postbacks.on('inquiry', record);
  postbacks.on('catalog', record);
  postbacks.on('duplicate', (event) => {
    print(`duplicate of ${event.meta.key}, answered without a second event`);
  });
  postbacks.on('rejected', (rejection: Rejection) => {
    print(`rejected ${rejection.status} ${rejection.code} from ${rejection.ip ?? 'unknown'}: ${rejection.message}`);
  });
  postbacks.on('error', (error) => {
    print(`error ${error.code}: ${error.message}`);
  });

  app.use('/impact', postbacks.router);
  app.get('/', (_req, res) => {
    res.type('json').send(JSON.stringify({ postbacks: log }, null, 2));
  });
  return { app, postbacks, log };
}
