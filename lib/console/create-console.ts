import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { PostbackRouter } from '../create-postback-router';
import { CONSOLE_CSS } from './assets';
import type { ConsoleReconcileAccount, PageContext } from './context';
import { consoleUrl, html, type Html } from './html';
import { actionPage } from './pages/action';
import { inboxPage } from './pages/inbox';
import { overviewPage } from './pages/overview';
import { postbacksPage } from './pages/postbacks';
import { reconcilePage } from './pages/reconcile';
import { refusedPage } from './pages/refused';
import { CsrfTokens, setSecurityHeaders } from './security';

export interface PostbackConsoleOptions {
  /**
   * Whether this request may see the console: called on every request, the stylesheet's too.
   * True (or a promise of true) lets it in; anything else, or a throw, answers 403.
   */
  readonly authorize: (req: Request) => boolean | Promise<boolean>;
  /** True: no retry and no reconciliation; the pages show no button, and posts are refused 403. */
  readonly readOnly?: boolean;
  /** impact.com's account to reconcile with from the console's Reconcile page. Without it the page is not shown. */
  readonly reconcile?: ConsoleReconcileAccount;
  /**
   * The secret the forms' CSRF tokens are made with, 32 characters or more: the same on every
   * instance behind a load balancer, so that a form from one is taken by another, and across
   * restarts. Default: a random one per process.
   */
  readonly secret?: string;
}

const OPTION_NAMES = new Set(['authorize', 'readOnly', 'reconcile', 'secret']);
/** A form the console posts is a few hundred bytes. */
const MAX_FORM_BYTES = 16 * 1024;

function checkOptions(postbacks: unknown, options: unknown): PostbackConsoleOptions {
  const router = postbacks as Partial<PostbackRouter<unknown>> | null;
  if (
    typeof router !== 'object' ||
    router === null ||
    typeof router.reconcile !== 'function' ||
    !('history' in router)
  ) {
    throw new TypeError(
      'createPostbackConsole(postbacks, options): postbacks must be what createPostbackRouter returned',
    );
  }
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('createPostbackConsole(postbacks, options): options with authorize are required');
  }
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name))
      throw new TypeError(`unknown option ${name}; the console takes authorize, readOnly, reconcile and secret`);
  }
  const { authorize, readOnly, reconcile, secret } = options as Record<string, unknown>;
  if (secret !== undefined && (typeof secret !== 'string' || secret.length < 32)) {
    throw new TypeError('option secret must be a string of 32 characters or more (the same on every instance)');
  }
  if (typeof authorize !== 'function') {
    throw new TypeError(
      'option authorize is required: the console shows every postback with its fields and can retry deliveries, so it must ' +
        'say who may open it, as in authorize: (req) => req.user?.isAdmin === true',
    );
  }
  if (readOnly !== undefined && typeof readOnly !== 'boolean')
    throw new TypeError('option readOnly must be true or false');
  if (reconcile !== undefined) {
    const account = reconcile as Record<string, unknown> | null;
    if (
      typeof account !== 'object' ||
      account === null ||
      typeof account['accountSid'] !== 'string' ||
      account['accountSid'] === '' ||
      typeof account['authToken'] !== 'string' ||
      account['authToken'] === '' ||
      (account['baseUrl'] !== undefined && typeof account['baseUrl'] !== 'string')
    ) {
      throw new TypeError('option reconcile must be { accountSid, authToken } with both non-empty strings');
    }
  }
  return options as PostbackConsoleOptions;
}

class FormTooLarge extends Error {}

/**
 * A form's fields: as a body parser of the host's left them, or read here. Express 4's parsers
 * set `req.body = {}` on requests they do not parse (express.json() on a form): an empty body is
 * read from the request itself.
 */
async function formOf(req: Request): Promise<URLSearchParams> {
  const parsed: unknown = req.body;
  if (typeof parsed === 'object' && parsed !== null && !Buffer.isBuffer(parsed) && Object.keys(parsed).length > 0) {
    const fields = new URLSearchParams();
    for (const [name, value] of Object.entries(parsed)) if (typeof value === 'string') fields.set(name, value);
    return fields;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new FormTooLarge();
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendPage(res: Response, status: number, page: Html): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(page.text);
}

function sendMessage(res: Response, status: number, message: string): void {
  sendPage(
    res,
    status,
    html`<!doctype html>
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <title>${status}</title>
        </head>
        <body>
          <p>${message}</p>
        </body>
      </html>`,
  );
}

function redirect(res: Response, location: string): void {
  res.statusCode = 303;
  res.setHeader('Location', location);
  res.end();
}

/** A date from a form's date field (UTC midnight), or null; 2026-02-31 is no date. */
function dayOf(text: string | null): Date | null {
  if (text === null || !/^\d{4}-\d{2}-\d{2}$/.test(text)) return null;
  const date = new Date(`${text}T00:00:00Z`);
  return Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== text ? null : date;
}

/** The longest range the console reconciles at once: impact.com keeps actions updatable for about that long. */
const MAX_RECONCILE_DAYS = 90;

/** A path the console may serve: segments of safe characters, none empty or a dot segment. */
function servable(path: string): boolean {
  if (path === '/' || path === '') return true;
  if (path.includes('\\') || path.includes('//')) return false;
  return path
    .slice(1)
    .split('/')
    .every((segment) => {
      const text = decoded(segment);
      return text !== null && text !== '' && text !== '.' && text !== '..';
    });
}

/** A path segment decoded, or null when its escapes are malformed. */
function decoded(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/**
 * The console: server-rendered pages over the router's history, inbox and reconciliation, for
 * the host to mount behind its own authentication:
 * `app.use('/postbacks-console', createPostbackConsole(postbacks, { authorize: (req) => req.user?.isAdmin === true }))`.
 * Every page reads fully without script (and the Content-Security-Policy allows none); every
 * value a sender controls is escaped; every change is a POST carrying a CSRF token bound to a cookie.
 */
export function createPostbackConsole<T>(
  postbacks: PostbackRouter<T>,
  options: PostbackConsoleOptions,
): RequestHandler {
  const { authorize, readOnly = false, reconcile } = checkOptions(postbacks, options);
  const router = postbacks as unknown as PostbackRouter<unknown>;
  const csrf = new CsrfTokens(options.secret === undefined ? undefined : Buffer.from(options.secret, 'utf8'));
  let reconciling = false;
  /** The pages by path; Reconcile only with an account to reconcile. */
  const pages = new Map<string, (context: PageContext) => Html | Promise<Html>>([
    ['/', overviewPage],
    ['', overviewPage],
    ['/postbacks', postbacksPage],
    ['/refused', refusedPage],
    ['/inbox', inboxPage],
    ...(reconcile === undefined ? [] : [['/reconcile', reconcilePage] as const]),
  ]);

  async function allowed(req: Request): Promise<boolean> {
    try {
      // Only true: a host's `(req) => req.user` or `req.user?.role` must not let every user in.
      const verdict: unknown = await authorize(req);
      return verdict === true;
    } catch {
      // A failing check lets nobody in.
      return false;
    }
  }

  async function get(req: Request, res: Response, path: string, context: PageContext): Promise<void> {
    if (path === '/assets/console.css') {
      res.setHeader('Content-Type', 'text/css; charset=utf-8');
      res.end(CONSOLE_CSS);
      return;
    }
    const page = pages.get(path);
    if (page !== undefined) {
      sendPage(res, 200, await page(context));
      return;
    }
    const action = /^\/actions\/([^/]+)$/.exec(path)?.[1];
    const actionId = action === undefined ? null : decoded(action);
    if (actionId !== null) {
      sendPage(res, 200, await actionPage(context, actionId));
      return;
    }
    sendMessage(res, 404, `No console page at ${req.originalUrl}.`);
  }

  async function post(res: Response, path: string, form: URLSearchParams, base: string): Promise<void> {
    if (path === '/inbox/retry' && router.inbox !== null) {
      const target = form.get('target') ?? '';
      if (target === 'dead') await router.inbox.retry({ status: 'dead' });
      else if (/^\d{1,15}$/.test(target)) await router.inbox.retry(Number(target));
      else {
        sendMessage(res, 400, 'Which row to retry is missing.');
        return;
      }
      redirect(res, consoleUrl(base, '/inbox'));
      return;
    }
    if (path === '/reconcile' && reconcile !== undefined) {
      const since = dayOf(form.get('since'));
      const until = dayOf(form.get('until'));
      if (since === null || until === null || until <= since) {
        sendMessage(res, 400, 'Give a start date before the end date, as YYYY-MM-DD.');
        return;
      }
      if (until.getTime() - since.getTime() > MAX_RECONCILE_DAYS * 86_400_000) {
        sendMessage(res, 400, `Reconcile at most ${MAX_RECONCILE_DAYS} days at once.`);
        return;
      }
      if (reconciling) {
        sendMessage(res, 409, 'A reconciliation is running; wait for it to end.');
        return;
      }
      reconciling = true;
      try {
        await router.reconcile({ ...reconcile, since, until });
      } catch {
        // The router keeps the failure as its last run; the page shows it.
      } finally {
        reconciling = false;
      }
      redirect(res, consoleUrl(base, '/reconcile'));
      return;
    }
    sendMessage(res, 404, 'Nothing to post here.');
  }

  async function handle(req: Request, res: Response): Promise<void> {
    setSecurityHeaders(res);
    if (!(await allowed(req))) {
      sendMessage(res, 403, 'You may not open the postbacks console.');
      return;
    }
    const base = req.baseUrl;
    // The path as sent, not as a URL parser resolves it: the console serves what the host's
    // authorize saw (req.path), and no `//host`, backslash or dot segment reaches a page.
    const [path = '/', search = ''] = req.url.split(/\?(.*)/s);
    if (!servable(path)) {
      sendMessage(res, 404, 'No console page here.');
      return;
    }
    if (req.method === 'POST') {
      if (readOnly) {
        sendMessage(res, 403, 'This console is read only.');
        return;
      }
      let form: URLSearchParams;
      try {
        form = await formOf(req);
      } catch (error) {
        if (!(error instanceof FormTooLarge)) throw error;
        sendMessage(res, 413, 'The form is too large.');
        return;
      }
      if (!csrf.verify(req, form.get('csrf') ?? undefined)) {
        sendMessage(res, 403, 'The form’s security token is missing or out of date: reload the page and try again.');
        return;
      }
      return post(res, path, form, base);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD, POST');
      sendMessage(res, 405, 'Use GET or POST.');
      return;
    }
    const context: PageContext = {
      base,
      postbacks: router,
      readOnly,
      csrfToken: csrf.formToken(req, res, base === '' ? '/' : base, req.secure),
      query: new URLSearchParams(search),
      canReconcile: reconcile !== undefined,
      lastReconcile: router.lastReconciliation(),
    };
    return get(req, res, path, context);
  }

  return (req: Request, res: Response, next: NextFunction): void => {
    // A failure is the host's error handler's, as any Express router's is.
    handle(req, res).catch(next);
  };
}
