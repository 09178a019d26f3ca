import { getEventListeners } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { isPostbackError, type ActionEvent, type ReconcileReport } from '../lib';
import { DELIVERED, OVERTAKEN, type DeliveryOutcome } from '../lib/delivery/apply-claim';
import { PostbackError } from '../lib/errors';
import { untilAborted } from '../lib/reconcile/actions-api';
import { reconcileActions, type ReconcileOptions, type ReconcileParts } from '../lib/reconcile/reconcile';
import type { JournalRecord } from '../lib/stores/store';
import { createApp } from './helpers/create-app';
import { apiAction, FakeActionsApi } from './helpers/fake-actions-api';

// reconcile()'s edges, one by one: its option checks, what it asks impact.com's Actions API,
// the answers it refuses, its 429 waits, and close() during a request or a wait.

const SID = 'IRtest';
const TOKEN = 'sEcReT-auth-token-0123456789';
const DAY_MS = 24 * 60 * 60 * 1000;
const SINCE = new Date('2026-01-01T00:00:00Z');
const UNTIL = new Date('2026-01-02T00:00:00Z');
const PAGE_1 = 'page 1 of 2026-01-01T00:00:00Z – 2026-01-02T00:00:00Z';
const NOT_A_LIST = `reconcile.invalid: impact.com's answer to ${PAGE_1} is not an Actions list`;
const STOPPED = `router.closed: reconciliation stopped: this receiver is shutting down, reading ${PAGE_1}`;

/** A request the scripted API received. */
interface Asked {
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** Date.now() when it arrived. */
  readonly at: number;
}

/** A local HTTP server that answers every request as the test says: impact.com's API at its oddest. */
class ScriptedApi {
  readonly asked: Asked[] = [];
  /** Answers a request; by default with an empty single-page listing. */
  answer: (res: http.ServerResponse, asked: Asked) => void = (res) => {
    sendJson(res, 200, listing([]));
  };
  private readonly waiters: { count: number; resolve: () => void }[] = [];
  private readonly server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const asked = { path: url.pathname, query: Object.fromEntries(url.searchParams), at: Date.now() };
    this.asked.push(asked);
    for (const waiter of this.waiters.filter((each) => each.count <= this.asked.length)) waiter.resolve();
    this.answer(res, asked);
  });
  private port = 0;

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Settles once `count` requests have arrived. */
  received(count: number): Promise<void> {
    if (this.asked.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  async start(): Promise<void> {
    // No keep-alive timer of the server's own among the timers a test counts.
    this.server.keepAliveTimeout = 0;
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Drops every connection, answered or not. */
  drop(): void {
    this.server.closeAllConnections();
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** An answer with its Content-Length, as impact.com sends them. */
function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** A page of the Actions list: one page of one unless `fields` say otherwise. */
function listing(actions: readonly unknown[], fields: Record<string, string> = {}): Record<string, unknown> {
  return { '@page': '1', '@numpages': '1', '@nextpageuri': '', ...fields, Actions: actions };
}

/** How a run ended, as one line: `resolved`, or the error's code (or TypeError) and message. */
async function outcome(running: Promise<unknown>): Promise<string> {
  try {
    await running;
    return 'resolved';
  } catch (error) {
    if (isPostbackError(error)) return `${error.code}: ${error.message}`;
    if (error instanceof TypeError) return `TypeError: ${error.message}`;
    return `unexpected: ${String(error)}`;
  }
}

/** The promise's own outcome if it settles within `ms`; else a failure saying what did not happen. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what}: not within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Timers keeping the process alive, mocha's timeout of the test among them (set once the test
 * function has returned its promise, hence the await): compare counts, not zero.
 */
async function timers(): Promise<number> {
  await Promise.resolve();
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
}

describe('reconcile() against impact.com’s Actions API, edge by edge', () => {
  let api: ScriptedApi;
  beforeEach(async () => {
    api = new ScriptedApi();
    await api.start();
  });
  afterEach(async () => {
    await api.stop();
  });

  // Any value for any option, as JavaScript may pass it.
  const options = (changes: Record<string, unknown> = {}): ReconcileOptions => ({
    accountSid: SID,
    authToken: TOKEN,
    since: SINCE,
    until: UNTIL,
    baseUrl: api.baseUrl,
    ...changes,
  });

  /** reconcileActions with a journal that knows nothing and no delivery, unless `parts` say otherwise. */
  const run = (changes: Record<string, unknown> = {}, parts: Partial<ReconcileParts> = {}): Promise<ReconcileReport> =>
    reconcileActions(options(changes), {
      readJournal: (subjects) => subjects.map(() => null),
      ordering: 'final-states',
      ...parts,
    });

  describe('options (also from JavaScript, any type)', () => {
    it('refuses an accountSid or authToken that is not a non-empty string, naming it', async () => {
      for (const accountSid of [42, '', null, ['IRtest']]) {
        expect(await outcome(run({ accountSid }))).to.equal('TypeError: option accountSid must be a non-empty string');
      }
      for (const authToken of ['', 42, { token: TOKEN }]) {
        expect(await outcome(run({ authToken }))).to.equal('TypeError: option authToken must be a non-empty string');
      }
      expect(api.asked).to.have.length(0);
    });

    it('refuses a since or until that is not a valid Date (a string, a number, an invalid Date), naming it', async () => {
      for (const since of ['2026-01-01T00:00:00Z', SINCE.getTime(), new Date('nope')]) {
        expect(await outcome(run({ since }))).to.equal('TypeError: option since must be a valid Date');
      }
      for (const until of ['2026-01-02T00:00:00Z', UNTIL.getTime(), new Date('nope')]) {
        expect(await outcome(run({ until }))).to.equal('TypeError: option until must be a valid Date');
      }
      expect(api.asked).to.have.length(0);
    });

    it('refuses an until equal to since; 1 ms later is accepted', async () => {
      expect(await outcome(run({ until: new Date(SINCE.getTime()) }))).to.equal(
        'TypeError: option until must be later than option since',
      );
      expect(api.asked).to.have.length(0);
      expect(await outcome(run({ until: new Date(SINCE.getTime() + 1) }))).to.equal('resolved');
      expect(api.asked).to.have.length(1);
    });

    it('refuses a baseUrl that is not an http(s) URL string (a number, no scheme, ftp:), naming it', async () => {
      for (const baseUrl of [42, 'api.impact.com', 'ftp://api.impact.com', '']) {
        expect(await outcome(run({ baseUrl }))).to.equal('TypeError: option baseUrl must be an http(s) URL');
      }
      expect(api.asked).to.have.length(0);
    });

    it('refuses a timeoutMs that is not a positive integer (0, "100"), naming it', async () => {
      expect(await outcome(run({ timeoutMs: 0 }))).to.equal(
        'TypeError: option timeoutMs must be a positive integer, got 0',
      );
      expect(await outcome(run({ timeoutMs: '100' }))).to.equal(
        'TypeError: option timeoutMs must be a positive integer, got 100',
      );
      expect(api.asked).to.have.length(0);
    });

    it('without baseUrl, asks https://api.impact.com/Mediapartners/{sid}/Actions', async () => {
      const asked: string[] = [];
      const realFetch = globalThis.fetch;
      // No network here: the request is answered in place of api.impact.com.
      globalThis.fetch = async (input: string | URL | Request) => {
        asked.push(input instanceof Request ? input.url : String(input));
        return new Response(JSON.stringify(listing([])), { status: 200 });
      };
      try {
        expect(
          await outcome(
            reconcileActions(
              { accountSid: SID, authToken: TOKEN, since: SINCE, until: UNTIL },
              {
                readJournal: (subjects) => subjects.map(() => null),
                ordering: 'final-states',
              },
            ),
          ),
        ).to.equal('resolved');
      } finally {
        globalThis.fetch = realFetch;
      }
      expect(asked.map((url) => url.split('?')[0])).to.deep.equal([
        'https://api.impact.com/Mediapartners/IRtest/Actions',
      ]);
    });
  });

  describe('what it asks', () => {
    it('sends the dates to the second, the range widened to whole seconds (…00.250Z – …00.250Z)', async () => {
      await run({ since: new Date('2026-01-01T00:00:00.250Z'), until: new Date('2026-01-02T00:00:00.250Z') });
      expect(api.asked.map(({ query }) => [query['StartDate'], query['EndDate']])).to.deep.equal([
        ['2026-01-01T00:00:00Z', '2026-01-02T00:00:01Z'],
      ]);
    });

    it('sends pageSize 1 and 20000 as they are; refuses 0, 20001, 1.5 and "100"', async () => {
      expect(await outcome(run({ pageSize: 1 }))).to.equal('resolved');
      expect(await outcome(run({ pageSize: 20_000 }))).to.equal('resolved');
      expect(api.asked.map(({ query }) => query['PageSize'])).to.deep.equal(['1', '20000']);
      for (const pageSize of [0, 20_001, 1.5, '100']) {
        expect(await outcome(run({ pageSize }))).to.equal(
          'TypeError: option pageSize must be an integer from 1 to 20000',
        );
      }
      expect(api.asked).to.have.length(2);
    });

    it('asks {baseUrl}/Mediapartners/{sid}/Actions when baseUrl has a path and trailing slashes', async () => {
      expect(await outcome(run({ baseUrl: `${api.baseUrl}/proxy//` }))).to.equal('resolved');
      expect(api.asked.map(({ path }) => path)).to.deep.equal(['/proxy/Mediapartners/IRtest/Actions']);
    });

    it('asks pages 2 to 10 by number when "@numpages" is "10" and "@nextpageuri" is empty', async () => {
      api.answer = (res) => {
        sendJson(res, 200, listing([], { '@numpages': '10' }));
      };
      expect(await run()).to.include({ pages: 10, requests: 10 });
      const first = api.asked[0]?.query;
      expect(api.asked.map(({ query }) => query)).to.deep.equal(
        ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10'].map((page) => ({ ...first, Page: page })),
      );
    });

    it('follows "@nextpageuri" on the same host exactly as given, relative or absolute', async () => {
      api.answer = (res, { query }) => {
        const next: Record<string, string> = {
          '1': '/Mediapartners/IRtest/Actions?Page=2&Cursor=abc',
          '2': `${api.baseUrl}/Mediapartners/IRtest/Actions?Page=3&Cursor=def`,
          '3': '',
        };
        sendJson(res, 200, listing([], { '@numpages': '3', '@nextpageuri': next[query['Page'] ?? ''] ?? '' }));
      };
      expect(await run()).to.include({ pages: 3, requests: 3 });
      expect(api.asked.slice(1).map(({ path, query }) => ({ path, query }))).to.deep.equal([
        { path: '/Mediapartners/IRtest/Actions', query: { Page: '2', Cursor: 'abc' } },
        { path: '/Mediapartners/IRtest/Actions', query: { Page: '3', Cursor: 'def' } },
      ]);
    });

    it('an exactly 45-day range is one window; one second more is two', async () => {
      const fake = new FakeActionsApi(SID, TOKEN);
      await fake.start();
      try {
        const exact = new Date(SINCE.getTime() + 45 * DAY_MS);
        await run({ baseUrl: fake.baseUrl, until: exact });
        await run({ baseUrl: fake.baseUrl, until: new Date(exact.getTime() + 1000) });
        expect(fake.requests.map(({ query, status }) => [query['StartDate'], query['EndDate'], status])).to.deep.equal([
          ['2026-01-01T00:00:00Z', '2026-02-15T00:00:00Z', 200],
          ['2026-01-01T00:00:00Z', '2026-02-15T00:00:00Z', 200],
          ['2026-02-15T00:00:00Z', '2026-02-15T00:00:01Z', 200],
        ]);
      } finally {
        await fake.stop();
      }
    });
  });

  describe('answers it refuses', () => {
    it('refuses an answer that is not JSON, naming the page', async () => {
      api.answer = (res) => {
        sendJson(res, 200, '<html>maintenance</html>');
      };
      expect(await outcome(run())).to.equal(
        `${NOT_A_LIST}: it is not a JSON object (invalid JSON: a JSON body must be an object)`,
      );
    });

    it('refuses "@nextpageuri" leading to another host (localhost for 127.0.0.1) without asking it', async () => {
      api.answer = (res, { query }) => {
        const next = `${api.baseUrl.replace('127.0.0.1', 'localhost')}/Mediapartners/IRtest/Actions?Page=2`;
        sendJson(res, 200, listing([], { '@numpages': '2', '@nextpageuri': query['Page'] === '1' ? next : '' }));
      };
      expect(await outcome(run())).to.equal(`${NOT_A_LIST}: its "@nextpageuri" leads to another host`);
      expect(api.asked).to.have.length(1);
    });

    it('refuses "@numpages" missing, not all digits ("x1", "1x", "1.5", "") or over 9 digits', async () => {
      let numPages: string | null = null;
      api.answer = (res, { query }) => {
        if (query['Page'] !== '1') {
          sendJson(res, 500, { Status: 'ERROR' });
          return;
        }
        const page = listing([]);
        if (numPages === null) delete page['@numpages'];
        else page['@numpages'] = numPages;
        sendJson(res, 200, page);
      };
      for (const value of [null, 'x1', '1x', '1.5', '', '1234567890']) {
        numPages = value;
        expect(await outcome(run()), String(value)).to.equal(`${NOT_A_LIST}: its "@numpages" is not a number`);
      }
    });

    it('refuses an action that is not an object (a string, null, an array), with its 1-based index', async () => {
      const valid = apiAction('1000.1.1', 'PENDING', '1.00');
      const pages: unknown[][] = [['text'], [valid, null], [valid, valid, [valid]]];
      let actions: unknown[] = [];
      api.answer = (res) => {
        sendJson(res, 200, listing(actions));
      };
      const messages = [];
      for (const page of pages) {
        actions = page;
        messages.push(await outcome(run()));
      }
      expect(messages).to.deep.equal([
        `${NOT_A_LIST}: action 1 is not an object`,
        `${NOT_A_LIST}: action 2 is not an object`,
        `${NOT_A_LIST}: action 3 is not an object`,
      ]);
    });

    it('refuses an action that does not read as one, naming it by its Id, else by its 1-based index', async () => {
      const valid = apiAction('1000.1.1', 'PENDING', '1.00');
      const pages: unknown[][] = [
        [valid, apiAction('1000.1.2', 'PENDING', 'abc')],
        [valid, valid, { ...apiAction('', 'PENDING', '1.00'), Id: undefined }],
        [valid, { ...apiAction('', 'PENDING', '1.00'), Id: { Value: '1000.1.3' } }],
      ];
      let actions: unknown[] = [];
      api.answer = (res) => {
        sendJson(res, 200, listing(actions));
      };
      const messages = [];
      for (const page of pages) {
        actions = page;
        messages.push(await outcome(run()));
      }
      expect(messages).to.deep.equal([
        `${NOT_A_LIST}: action 1000.1.2: field "payout" is not a plain decimal number such as 12.50`,
        `${NOT_A_LIST}: action 3: field "actionId" is missing or empty`,
        `${NOT_A_LIST}: action 2: field "actionId" must be text`,
      ]);
    });

    it('a 401 says to check the account SID and auth token; a 403 does not', async () => {
      let status = 401;
      api.answer = (res) => {
        sendJson(res, status, { Status: 'ERROR', Message: 'Unauthorized' });
      };
      const unauthorized = await outcome(run());
      status = 403;
      const forbidden = await outcome(run());
      expect([unauthorized, forbidden]).to.deep.equal([
        `reconcile.http: impact.com's Actions API answered 401 (check the account SID and auth token), reading ${PAGE_1}`,
        `reconcile.http: impact.com's Actions API answered 403, reading ${PAGE_1}`,
      ]);
    });

    it('reads a 299 as a 2xx', async () => {
      api.answer = (res) => {
        sendJson(res, 299, listing([apiAction('1000.1.1', 'PENDING', '1.00')]));
      };
      expect(await run()).to.include({ checked: 1, missing: 1, pages: 1, requests: 1 });
    });

    it('refuses a Content-Length over 100 MB without waiting for the body', async () => {
      api.answer = (res) => {
        // The headers only: the body never comes.
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(100 * 1024 * 1024 + 1) });
        res.flushHeaders();
      };
      expect(await within(outcome(run({ timeoutMs: 30_000 })), 10_000, 'the refusal')).to.equal(
        `${NOT_A_LIST}: it is 104857601 bytes long`,
      );
    });

    it('reads the body of a Content-Length of exactly 100 MB (here cut short: reconcile.http, not refused)', async () => {
      api.answer = (res) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(100 * 1024 * 1024) });
        res.write('{"Actions": [');
        // Dropped once the client is reading the body.
        setTimeout(() => res.destroy(), 100);
      };
      expect(await outcome(run())).to.equal(
        `reconcile.http: impact.com's Actions API could not be reached (UND_ERR_SOCKET), reading ${PAGE_1}`,
      );
    });

    it('a refused connection is reconcile.http "could not be reached (ECONNREFUSED)"', async () => {
      const closed = new ScriptedApi();
      await closed.start();
      const { baseUrl } = closed;
      await closed.stop();
      expect(await outcome(run({ baseUrl }))).to.equal(
        `reconcile.http: impact.com's Actions API could not be reached (ECONNREFUSED), reading ${PAGE_1}`,
      );
    });

    it('a request with no answer within timeoutMs is reconcile.http "did not answer within 300 ms"', async () => {
      api.answer = () => {
        // Never answered.
      };
      expect(await outcome(run({ timeoutMs: 300 }))).to.equal(
        `reconcile.http: impact.com's Actions API did not answer within 300 ms, reading ${PAGE_1}`,
      );
    });
  });

  describe('429s', () => {
    /** Answers 429 (with `reset` as X-RateLimit-Reset unless null) to the first `times` requests. */
    const rateLimit = (times: number, reset: (index: number) => string | null) => {
      api.answer = (res) => {
        const index = api.asked.length - 1;
        if (index >= times) {
          sendJson(res, 200, listing([]));
          return;
        }
        const value = reset(index);
        sendJson(res, 429, { Status: 'ERROR' }, value === null ? {} : { 'X-RateLimit-Reset': value });
      };
    };
    const gaps = () => api.asked.slice(1).map((asked, index) => asked.at - (api.asked[index]?.at ?? 0));

    it('waits out ten 429s in a row (X-RateLimit-Reset: 0); an eleventh fails with its status', async () => {
      rateLimit(10, () => '0');
      expect(await within(run(), 20_000, 'the run')).to.include({ pages: 1, requests: 11 });
      api.asked.length = 0;
      rateLimit(Infinity, () => '0');
      expect(await within(outcome(run()), 20_000, 'the refusal')).to.equal(
        `reconcile.http: impact.com's Actions API answered 429, reading ${PAGE_1}`,
      );
      expect(api.asked).to.have.length(11);
    });

    it('without a usable X-RateLimit-Reset (absent, then -5) backs off 1 s, then 2 s', async () => {
      rateLimit(2, (index) => (index === 0 ? null : '-5'));
      expect(await within(run(), 20_000, 'the run')).to.include({ requests: 3 });
      const [first = 0, second = 0] = gaps();
      expect(first).to.be.within(950, 1900);
      expect(second).to.be.within(1950, 3900);
    });

    it('waits X-RateLimit-Reset: 2 as seconds from now: about 2 s', async () => {
      rateLimit(1, () => '2');
      expect(await within(run(), 20_000, 'the run')).to.include({ requests: 2 });
      expect(gaps()[0]).to.be.within(1950, 3900);
    });

    it('waits X-RateLimit-Reset as a Unix time in seconds until that time (about 2 s, not an hour)', async () => {
      const reset = Math.floor(Date.now() / 1000) + 3;
      rateLimit(1, () => String(reset));
      expect(await within(run(), 20_000, 'the run')).to.include({ requests: 2 });
      expect(api.asked[1]?.at).to.be.within(reset * 1000 - 50, reset * 1000 + 2000);
    });

    it('reads X-RateLimit-Reset: 1000000000 as seconds, capped at an hour: no request for 2 s; close() ends the wait, leaving no timer', async () => {
      rateLimit(1, () => '1000000000');
      const app = createApp();
      const before = await timers();
      const running = outcome(app.postbacks.reconcile(options()));
      await api.received(1);
      await sleep(2000);
      expect(api.asked).to.have.length(1);
      const closed = app.postbacks.close();
      expect(await within(running, 5000, 'the end of the wait')).to.equal(STOPPED);
      await closed;
      expect(api.asked).to.have.length(1);
      expect(await timers()).to.equal(before);
    });
  });

  describe('close() and stopping', () => {
    it('close() during a request ends it at once (not at timeoutMs) with router.closed, leaving no timer', async () => {
      api.answer = () => {
        // Never answered.
      };
      const app = createApp();
      const before = await timers();
      const running = outcome(app.postbacks.reconcile(options({ timeoutMs: 30_000 })));
      await api.received(1);
      const closed = app.postbacks.close();
      expect(await within(running, 5000, 'the end of the request')).to.equal(STOPPED);
      await closed;
      expect(await timers()).to.equal(before);
    });

    it('a body read that fails once close() was called is router.closed, not reconcile.http', async () => {
      api.answer = (res) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': '1000' });
        res.write('{"Actions": [');
      };
      const app = createApp();
      const running = outcome(app.postbacks.reconcile(options({ timeoutMs: 30_000 })));
      await api.received(1);
      // The headers are in: the client is reading the body.
      await sleep(300);
      const closed = app.postbacks.close();
      // The read ends whether or not the abort reaches it (undici sometimes loses an abort
      // during a body read): the connection is dropped.
      api.drop();
      expect(await within(running, 5000, 'the end of the body')).to.equal(STOPPED);
      await closed;
    });

    it('stopped during the first delivery of a page: router.closed, and the rest of the page is not delivered', async () => {
      api.answer = (res) => {
        sendJson(res, 200, listing(['1', '2', '3'].map((n) => apiAction(`1000.2.${n}`, 'PENDING', '1.00'))));
      };
      const stopping = new AbortController();
      const delivered: string[] = [];
      const result = await outcome(
        run(
          {},
          {
            deliver: async (event) => {
              delivered.push(event.actionId);
              stopping.abort();
              return DELIVERED;
            },
            stopped: stopping.signal,
          },
        ),
      );
      expect([result, delivered]).to.deep.equal([
        'router.closed: reconciliation stopped: this receiver is shutting down',
        ['1000.2.1'],
      ]);
    });

    it('stopped after the last delivery of a page: router.closed, and the next page is not asked', async () => {
      api.answer = (res, { query }) => {
        const page = query['Page'] ?? '';
        const action = apiAction(`1000.3.${page}`, 'PENDING', '1.00');
        sendJson(res, 200, listing([action], { '@numpages': '2', '@page': page }));
      };
      const stopping = new AbortController();
      const result = await outcome(
        run(
          {},
          {
            deliver: async () => {
              stopping.abort();
              return DELIVERED;
            },
            stopped: stopping.signal,
          },
        ),
      );
      expect(result).to.equal('router.closed: reconciliation stopped: this receiver is shutting down');
      expect(api.asked.map(({ query }) => query['Page'])).to.deep.equal(['1']);
    });

    it('a body read begun after the abort, which then fails, is no unhandled rejection', async () => {
      const escaped: unknown[] = [];
      const onEscape = (reason: unknown): void => void escaped.push(reason);
      process.prependListener('unhandledRejection', onEscape);
      try {
        const controller = new AbortController();
        controller.abort(new DOMException('no answer within 1 ms', 'TimeoutError'));
        let failRead = (_error: Error): void => undefined;
        const read = new Promise<string>((_resolve, reject) => {
          failRead = reject;
        });
        const result = await untilAborted(read, controller.signal).catch((error: unknown) => (error as Error).name);
        // As undici does: the aborted body's read fails too, later.
        failRead(new DOMException('This operation was aborted', 'AbortError'));
        await sleep(20);
        expect([result, escaped]).to.deep.equal(['TimeoutError', []]);
      } finally {
        process.removeListener('unhandledRejection', onEscape);
      }
    });

    it('leaves no listener on the stopped signal and no timer once a run (with a 429) is over', async () => {
      let requests = 0;
      api.answer = (res, { query }) => {
        requests += 1;
        if (requests === 2) sendJson(res, 429, { Status: 'ERROR' }, { 'X-RateLimit-Reset': '0' });
        else sendJson(res, 200, listing([], { '@numpages': '2', '@page': query['Page'] ?? '' }));
      };
      const stopping = new AbortController();
      const before = await timers();
      expect(await run({ timeoutMs: 30_000 }, { stopped: stopping.signal })).to.include({ pages: 2, requests: 3 });
      expect(getEventListeners(stopping.signal, 'abort')).to.have.length(0);
      expect(await timers()).to.equal(before);
    });
  });

  describe('the report and the delivered events', () => {
    it('counts an overtaken delivery as overtaken, not as delivered or failed', async () => {
      api.answer = (res) => {
        sendJson(res, 200, listing(['1', '2', '3'].map((n) => apiAction(`1000.4.${n}`, 'PENDING', '1.00'))));
      };
      const outcomes: DeliveryOutcome[] = [
        OVERTAKEN,
        DELIVERED,
        { kind: 'failed', error: new PostbackError('listener.failed', 'ledger down') },
      ];
      const report = await run({}, { deliver: async () => outcomes.shift() ?? DELIVERED });
      expect(report).to.deep.equal({
        checked: 3,
        missing: 3,
        changed: 0,
        overtaken: 1,
        unchanged: 0,
        stale: 0,
        delivered: 1,
        failed: 1,
        pages: 1,
        requests: 1,
      });
    });

    it('keys a changed action by the journal record it changes: the same state over another record is another key', async () => {
      api.answer = (res) => {
        sendJson(res, 200, listing([apiAction('1000.5.1', 'APPROVED', '2.00')]));
      };
      const record = (key: string): JournalRecord => ({
        status: 'PENDING',
        payout: '1.00',
        amount: '100.00',
        currency: 'USD',
        key,
      });
      const deliveries: [string, string | null][] = [];
      for (const key of ['first-postback', 'second-postback', 'first-postback']) {
        await run(
          {},
          {
            readJournal: () => [record(key)],
            deliver: async (event: ActionEvent, readKey) => {
              deliveries.push([event.meta.key, readKey]);
              return DELIVERED;
            },
          },
        );
      }
      const [first, second, again] = deliveries;
      expect(deliveries.map(([, readKey]) => readKey)).to.deep.equal([
        'first-postback',
        'second-postback',
        'first-postback',
      ]);
      expect(first?.[0]).to.match(/^reconciliation:/);
      expect(second?.[0]).not.to.equal(first?.[0]);
      expect(again?.[0]).to.equal(first?.[0]);
    });
  });
});
