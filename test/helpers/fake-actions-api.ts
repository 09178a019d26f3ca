import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** An action as the fake lists it: the API's fields (all strings), and when it was last updated. */
export interface FakeAction {
  readonly fields: Readonly<Record<string, string>>;
  readonly updatedAt: Date;
}

export interface FakeRequest {
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly status: number;
  readonly authorization: string | undefined;
  readonly accept: string | undefined;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * A local impact.com Partner API that serves GET /Mediapartners/{sid}/Actions as
 * shared/impact/partner-actions-api.md describes it: HTTP Basic auth (401 otherwise); StartDate
 * and EndDate both or neither, at most 45 days apart (400 otherwise), filtering on the last
 * update; neither: the last 7 days; Page and PageSize; the answer's `@` fields as strings,
 * `@nextpageuri` empty on the last page. Failures on demand: a 429 or any status for the
 * next requests of a given page.
 */
export class FakeActionsApi {
  readonly requests: FakeRequest[] = [];
  actions: FakeAction[] = [];
  /** Answers queued for requests of a page number: the status, and for 429 an X-RateLimit-Reset. */
  private readonly failures = new Map<number, { status: number; reset?: string }[]>();
  private server: http.Server | null = null;
  private port = 0;

  constructor(
    readonly accountSid: string,
    readonly authToken: string,
  ) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Milliseconds the answers wait before they are sent. */
  delayMs = 0;

  /** The next `times` requests for `page` (any window) are answered `status`. */
  failPage(page: number, status: number, times = 1, reset?: string): void {
    const queue = this.failures.get(page) ?? [];
    for (let i = 0; i < times; i += 1) queue.push(reset === undefined ? { status } : { status, reset });
    this.failures.set(page, queue);
  }

  /** Sets an action's fields (merged into what it had) and marks it updated at `updatedAt`. */
  put(fields: Record<string, string>, updatedAt = new Date()): void {
    const id = fields['Id'];
    const index = this.actions.findIndex((action) => action.fields['Id'] === id);
    const merged = { ...(index < 0 ? {} : this.actions[index]?.fields), ...fields };
    const action = { fields: merged, updatedAt };
    if (index < 0) this.actions.push(action);
    else this.actions[index] = action;
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.answer(req, res);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const query = Object.fromEntries(url.searchParams);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      this.requests.push({
        path: url.pathname,
        query,
        status,
        authorization: req.headers.authorization,
        accept: req.headers.accept,
      });
      const answer = () => {
        if (res.destroyed) return;
        res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      if (this.delayMs === 0) answer();
      else setTimeout(answer, this.delayMs);
    };
    const expected = `Basic ${Buffer.from(`${this.accountSid}:${this.authToken}`).toString('base64')}`;
    if (req.headers.authorization !== expected) return send(401, { Status: 'ERROR', Message: 'Unauthorized' });
    if (req.method !== 'GET' || url.pathname !== `/Mediapartners/${this.accountSid}/Actions`) {
      return send(404, { Status: 'ERROR', Message: 'Not found' });
    }
    const hasStart = query['StartDate'] !== undefined;
    if (hasStart !== (query['EndDate'] !== undefined)) {
      return send(400, { Status: 'ERROR', Message: 'StartDate and EndDate must be given together' });
    }
    const end = hasStart ? Date.parse(query['EndDate'] ?? '') : Date.now();
    const start = hasStart ? Date.parse(query['StartDate'] ?? '') : end - 7 * DAY_MS;
    if (Number.isNaN(start) || Number.isNaN(end) || !/[zZ]|[+-]\d\d:?\d\d$/.test(query['EndDate'] ?? 'Z')) {
      return send(400, { Status: 'ERROR', Message: 'dates must be ISO 8601 with an offset' });
    }
    if (end - start > 45 * DAY_MS || end < start) {
      return send(400, { Status: 'ERROR', Message: 'the date range may span at most 45 days' });
    }
    const page = Number(query['Page'] ?? '1');
    const pageSize = Number(query['PageSize'] ?? '100');
    if (!Number.isInteger(page) || page < 1 || !Number.isInteger(pageSize) || pageSize < 1) {
      return send(400, { Status: 'ERROR', Message: 'Page and PageSize must be positive integers' });
    }
    const failure = this.failures.get(page)?.shift();
    if (failure !== undefined) {
      const headers: Record<string, string> = { 'X-RateLimit-Limit': '1000', 'X-RateLimit-Remaining': '0' };
      if (failure.reset !== undefined) headers['X-RateLimit-Reset'] = failure.reset;
      return send(failure.status, { Status: 'ERROR', Message: 'on demand' }, failure.status === 429 ? headers : {});
    }
    // Newest first by creation, as impact.com lists them; filtered by the last update.
    const listed = this.actions
      .filter((action) => action.updatedAt.getTime() >= start && action.updatedAt.getTime() <= end)
      .reverse();
    const numPages = Math.max(1, Math.ceil(listed.length / pageSize));
    const slice = listed.slice((page - 1) * pageSize, page * pageSize).map((action) => action.fields);
    const uri = (p: number) => {
      const next = new URL(url);
      next.searchParams.set('Page', String(p));
      return `${next.pathname}${next.search}`;
    };
    return send(200, {
      '@page': String(page),
      '@numpages': String(numPages),
      '@pagesize': String(pageSize),
      '@total': String(listed.length),
      '@start': String((page - 1) * pageSize),
      '@end': String((page - 1) * pageSize + slice.length - 1),
      '@uri': uri(page),
      '@firstpageuri': uri(1),
      '@previouspageuri': page > 1 ? uri(page - 1) : '',
      '@nextpageuri': page < numPages ? uri(page + 1) : '',
      '@lastpageuri': uri(numPages),
      Actions: slice,
    });
  }
}

/** An API action with the fields reconciliation compares, and a few it does not. */
export function apiAction(id: string, state: string, payout: string, extra: Record<string, string> = {}) {
  return {
    Id: id,
    CampaignId: '1000',
    CampaignName: 'Example Brand',
    ActionTrackerId: '12345',
    State: state,
    Payout: payout,
    Amount: '100.00',
    Currency: 'USD',
    EventDate: '2026-11-02T10:00:00-08:00',
    CreationDate: '2026-11-02T10:05:00-08:00',
    LockingDate: '2026-12-02T00:00:00-08:00',
    ClearedDate: '',
    SubId1: 'user-1',
    Uri: `/Mediapartners/IRtest/Actions/${id}`,
    ...extra,
  };
}
