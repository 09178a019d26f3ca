import { readJsonBody } from '../body/parse-json';
import type { FieldRecord, FieldValue } from '../body/field-record';
import { PostbackError } from '../errors';

/** What the client needs to read one account's actions. */
export interface ActionsApiSettings {
  readonly accountSid: string;
  readonly authToken: string;
  readonly since: Date;
  readonly until: Date;
  readonly baseUrl: string;
  readonly pageSize: number;
  /** One request slower than this fails, in ms. */
  readonly timeoutMs: number;
  /** Aborted when the router shuts down: a request or a wait under way ends. */
  readonly stopped?: AbortSignal;
}

/** One page of actions as the API listed them. */
export interface ActionsPage {
  readonly actions: readonly FieldRecord[];
  /** Which page of which window, for messages: `page 2 of 2026-10-01T00:00:00Z – 2026-11-15T00:00:00Z`. */
  readonly label: string;
  /**
   * When the request that listed them went out: impact.com's state is at least that recent, and
   * may be no more recent (the answer can be read from a snapshot taken as the request came).
   */
  readonly requestedAt: Date;
}

const DAY_MS = 24 * 60 * 60 * 1000;
// impact.com refuses StartDate and EndDate more than 45 days apart (partner-actions-api.md).
const WINDOW_MS = 45 * DAY_MS;
/** 429s in a row on one page before reconciliation gives up. */
const MAX_RATE_LIMITED = 10;
const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;
/** The longest wait for a rate limit to reset: impact.com's limit is counted per hour. */
const MAX_RESET_WAIT_MS = 60 * 60 * 1000;
/** What a request that met a 429 answers, once its wait is over. */
const RATE_LIMITED = Symbol('rate limited');
/** A page holds at most 20,000 actions of a few KB each; anything larger is not a page. */
const MAX_PAGE_BYTES = 100 * 1024 * 1024;

/**
 * impact.com's Partner API, `GET /Mediapartners/{AccountSID}/Actions`, read page by page over
 * windows of at most 45 days of last-updated dates. Counts the requests and pages it read.
 * The auth token goes into the Authorization header only: no message here carries it.
 */
export class ActionsApi {
  requests = 0;
  pages = 0;
  private readonly authorization: string;
  private readonly origin: string;

  constructor(private readonly settings: ActionsApiSettings) {
    this.authorization = `Basic ${Buffer.from(`${settings.accountSid}:${settings.authToken}`).toString('base64')}`;
    this.origin = new URL(settings.baseUrl).origin;
  }

  /** Every page of every window, in order; a page is complete and checked before it is given. */
  async *read(): AsyncGenerator<ActionsPage> {
    // impact.com's date filters are read to the second: the range is widened to whole seconds,
    // so an action updated in the last second before `until` is still listed.
    const since = new Date(Math.floor(this.settings.since.getTime() / 1000) * 1000);
    const until = new Date(Math.ceil(this.settings.until.getTime() / 1000) * 1000);
    for (const [start, end] of windows(since, until)) {
      const range = `${dateParam(start)} – ${dateParam(end)}`;
      let url: URL | null = this.pageUrl(start, end, 1);
      for (let page = 1; url !== null; page += 1) {
        const label = `page ${page} of ${range}`;
        const { text, requestedAt } = await this.fetchPage(url, label);
        const { actions, numPages, nextUri } = readPage(text, label);
        this.pages += 1;
        yield { actions, label, requestedAt };
        url = this.nextPage(nextUri, label) ?? (page < numPages ? this.pageUrl(start, end, page + 1) : null);
      }
    }
  }

  private unreachable(error: unknown, label: string): PostbackError {
    const why =
      (error as { name?: unknown }).name === 'TimeoutError'
        ? `did not answer within ${this.settings.timeoutMs} ms`
        : `could not be reached (${causeText(error)})`;
    return new PostbackError('reconcile.http', `impact.com's Actions API ${why}, reading ${label}`);
  }

  private pageUrl(start: Date, end: Date, page: number): URL {
    const base = this.settings.baseUrl.replace(/\/+$/, '');
    const url = new URL(`${base}/Mediapartners/${encodeURIComponent(this.settings.accountSid)}/Actions`);
    url.searchParams.set('StartDate', dateParam(start));
    url.searchParams.set('EndDate', dateParam(end));
    url.searchParams.set('Page', String(page));
    url.searchParams.set('PageSize', String(this.settings.pageSize));
    return url;
  }

  /** One page's text and when the request that got it went out; waits out 429s, and fails on anything else that is not a 2xx. */
  private async fetchPage(url: URL, label: string): Promise<{ text: string; requestedAt: Date }> {
    for (let limited = 0; ; limited += 1) {
      this.requests += 1;
      const requestedAt = new Date();
      const text = await this.attempt(url, label, limited);
      if (text !== RATE_LIMITED) return { text, requestedAt };
    }
  }

  /**
   * One request, bounded by the timeout with its body (a timer of its own, ended with it, not an
   * AbortSignal.timeout, whose timer outlives the request by the whole timeout); a 429 that may
   * be waited out is waited out, and answers RATE_LIMITED.
   */
  private async attempt(url: URL, label: string, limited: number): Promise<string | typeof RATE_LIMITED> {
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(new DOMException(`no answer within ${this.settings.timeoutMs} ms`, 'TimeoutError'));
    }, this.settings.timeoutMs);
    const stop = (): void => {
      controller.abort(this.settings.stopped?.reason);
    };
    this.settings.stopped?.addEventListener('abort', stop);
    try {
      let response: Response;
      try {
        response = await fetch(url, {
          headers: { Authorization: this.authorization, Accept: 'application/json' },
          signal: controller.signal,
          redirect: 'error',
        });
      } catch (error) {
        if (this.settings.stopped?.aborted === true) throw stoppedError(label);
        throw this.unreachable(error, label);
      }
      if (response.status === 429 && limited < MAX_RATE_LIMITED) {
        await response.body?.cancel();
        clearTimeout(timer);
        // Only close() ends the wait: the request's own timeout may have fired while the body
        // was let go, and the 429 is an answer all the same.
        await delay(rateLimitWait(response.headers.get('x-ratelimit-reset'), limited), this.settings.stopped, label);
        return RATE_LIMITED;
      }
      if (response.status < 200 || response.status > 299) {
        await response.body?.cancel();
        const advice = response.status === 401 ? ' (check the account SID and auth token)' : '';
        throw new PostbackError(
          'reconcile.http',
          `impact.com's Actions API answered ${response.status}${advice}, reading ${label}`,
        );
      }
      const length = Number(response.headers.get('content-length') ?? 0);
      if (length > MAX_PAGE_BYTES) {
        await response.body?.cancel();
        throw invalid(`it is ${length} bytes long`, label);
      }
      // The timeout holds for the body too.
      return await untilAborted(response.text(), controller.signal).catch((error: unknown) => {
        if (this.settings.stopped?.aborted === true) throw stoppedError(label);
        throw this.unreachable(error, label);
      });
    } finally {
      clearTimeout(timer);
      this.settings.stopped?.removeEventListener('abort', stop);
    }
  }

  /** The page the answer links to as next, on impact.com's own host; null when it links to none. */
  private nextPage(nextUri: string | null, label: string): URL | null {
    if (nextUri === null) return null;
    const next = new URL(nextUri, this.settings.baseUrl);
    // The address comes from the answer: the credentials must go to impact.com only.
    if (next.origin !== this.origin) throw invalid('its "@nextpageuri" leads to another host', label);
    return next;
  }
}

/** A page's actions, its page count and its link to the next page, or a reconcile.invalid. */
function readPage(text: string, label: string): { actions: FieldRecord[]; numPages: number; nextUri: string | null } {
  let body: FieldRecord;
  try {
    // The router's own JSON reader: amounts keep their exact text, a repeated key is refused.
    body = readJsonBody(text, Number.MAX_SAFE_INTEGER);
  } catch (error) {
    throw invalid(`it is not a JSON object (${(error as Error).message})`, label);
  }
  const list = body['Actions'];
  if (!Array.isArray(list)) throw invalid('it has no "Actions" list', label);
  const actions = (list as readonly FieldValue[]).map((item, index) => {
    if (typeof item !== 'object' || Array.isArray(item)) throw invalid(`action ${index + 1} is not an object`, label);
    return item as FieldRecord;
  });
  const numPages = pageNumber(body['@numpages']);
  if (numPages === null) throw invalid('its "@numpages" is not a number', label);
  const nextUri = body['@nextpageuri'];
  return { actions, numPages, nextUri: typeof nextUri === 'string' && nextUri !== '' ? nextUri : null };
}

/** The range cut into windows of at most 45 days, oldest first. */
export function windows(since: Date, until: Date): [Date, Date][] {
  const cut: [Date, Date][] = [];
  for (let start = since.getTime(); start < until.getTime(); start += WINDOW_MS) {
    cut.push([new Date(start), new Date(Math.min(start + WINDOW_MS, until.getTime()))]);
  }
  return cut;
}

/** ISO 8601 with an offset (Z), to the second, as impact.com's date filters take them. */
export function dateParam(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// The API gives its numbers as strings ("@numpages": "3"); the JSON reader keeps a bare number's text.
function pageNumber(value: FieldValue | undefined): number | null {
  if (typeof value !== 'string' || !/^\d{1,9}$/.test(value)) return null;
  return Number(value);
}

/**
 * How long to wait after a 429: until X-RateLimit-Reset where it is given (seconds from now, or
 * a Unix time in seconds; impact.com does not say which), else 1 s, 2 s, 4 s… up to a minute.
 */
function rateLimitWait(reset: string | null, limited: number): number {
  const value = reset === null ? Number.NaN : Number(reset);
  if (Number.isFinite(value) && value >= 0) {
    const ms = value > 1e9 ? value * 1000 - Date.now() : value * 1000;
    return Math.min(Math.max(ms, 0), MAX_RESET_WAIT_MS);
  }
  return Math.min(FIRST_BACKOFF_MS * 2 ** limited, MAX_BACKOFF_MS);
}

function stoppedError(label: string): PostbackError {
  return new PostbackError('router.closed', `reconciliation stopped: this receiver is shutting down, reading ${label}`);
}

/** Waits `ms`, or rejects once `signal` aborts (the router shuts down). */
function delay(ms: number, signal: AbortSignal | undefined, label: string): Promise<void> {
  if (signal === undefined) return new Promise((resolve) => setTimeout(resolve, ms));
  return new Promise((resolve, reject) => {
    // Aborted already (close() came while the 429's body was let go): its event will not come again.
    if (signal.aborted) {
      reject(stoppedError(label));
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      reject(stoppedError(label));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', done);
      resolve();
    }, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The body's text, or a rejection with the signal's reason once it aborts. Node 20's fetch
 * (undici 6) now and then loses an abort that comes while the body is read: the read never
 * settles, and neither the timeout nor close() would end it.
 */
export function untilAborted(text: Promise<string>, signal: AbortSignal): Promise<string> {
  if (signal.aborted) {
    // The read fails too, with nobody left to hear it: an unhandled rejection ends the process.
    text.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([text, aborted]).finally(() => {
    signal.removeEventListener('abort', onAbort);
  });
}

/** A network failure's own words (fetch wraps them as "fetch failed"), never the request. */
function causeText(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const code = cause?.code;
  if (typeof code === 'string') return code;
  return typeof cause?.message === 'string' ? cause.message : (error as Error).message;
}

function invalid(why: string, label: string): PostbackError {
  return new PostbackError('reconcile.invalid', `impact.com's answer to ${label} is not an Actions list: ${why}`);
}
