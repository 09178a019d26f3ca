import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import http from 'node:http';
import express from 'express';
import express4 from 'express4';
import type { Browser, Page } from 'playwright-core';
import { createPostbackConsole, createPostbackRouter, SqliteStore, type PostbackRouter } from '../lib';
import { apiAction, FakeActionsApi } from './helpers/fake-actions-api';
import { startServer, type RunningServer } from './helpers/server';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const ROOT = path.resolve(__dirname, '..');
const SCREENSHOTS = path.join(ROOT, '.tmp', 'console-screenshots');
const SID = 'IRconsole';
const TOKEN = 'console-auth-token-0123456789';
const ADMIN = { 'x-admin': 'yes' };

/** Values a sender controls that must show as text and never run: the hostile-input catalogue's kind. */
const HOSTILE = {
  script: '<script>window.__pwned = 1</script>',
  image: '"><img src=x onerror="window.__pwned = 1">',
  link: 'javascript:window.__pwned=1',
  rtl: 'safe\u202Egpj.exe',
  key: '<b onmouseover="window.__pwned=1">key</b>',
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check());) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(20);
  }
}

describe('the console', function () {
  this.timeout(60_000);
  let dir: string;
  let api: FakeActionsApi;
  let postbacks: PostbackRouter<unknown>;
  let server: RunningServer;
  /** Actions whose listener fails, making their inbox row dead (maxAttempts 1). */
  const failing = new Set<string>();
  const delivered: string[] = [];

  async function send(query: string): Promise<number> {
    return (await fetch(`${server.base}/impact/actions?${query}`)).status;
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'impact-console-'));
    api = new FakeActionsApi(SID, TOKEN);
    await api.start();
    postbacks = createPostbackRouter<unknown>({
      allowedIps: ['127.0.0.1', '::1'],
      store: new SqliteStore({ path: path.join(dir, 'console.db') }),
      delivery: 'inbox',
      maxAttempts: 1,
      backoff: { baseMs: 10, maxMs: 20 },
      history: true,
    });
    postbacks.on('action', (event) => {
      if (failing.has(event.actionId)) throw new Error(`ledger refused ${event.actionId}`);
      delivered.push(event.actionId);
    });
    postbacks.on('error', () => undefined);
    const app = express();
    app.use('/impact', postbacks.router);
    app.use(
      '/console',
      createPostbackConsole(postbacks, {
        authorize: (req) => req.headers['x-admin'] === 'yes',
        reconcile: { accountSid: SID, authToken: TOKEN, baseUrl: api.baseUrl },
      }),
    );
    app.use(
      '/read-only',
      createPostbackConsole(postbacks, { authorize: (req) => req.headers['x-admin'] === 'yes', readOnly: true }),
    );
    server = await startServer(app);

    // Every outcome: stored and delivered, a duplicate, a stale PENDING, refusals, a dead row.
    expect(await send('ActionId=1000.1.1&Status=PENDING&Payout=5.00&SubId1=member-1')).to.equal(200);
    await until(() => delivered.includes('1000.1.1'), 5000);
    expect(await send('ActionId=1000.1.1&Status=PENDING&Payout=5.00&SubId1=member-1')).to.equal(200);
    expect(await send('ActionId=1000.1.1&Status=APPROVED&Payout=5.00&SubId1=member-1')).to.equal(200);
    await until(() => delivered.filter((id) => id === '1000.1.1').length === 2, 5000);
    expect(await send('ActionId=1000.1.1&Status=PENDING&Payout=4.00&SubId1=member-1')).to.equal(200);
    expect(await send('ActionId={ActionId}&Status=PENDING&Payout=5.00&SubId1=member-2')).to.equal(400);
    postbacks.setAllowedIps(['192.0.2.1']);
    expect(await send('ActionId=1000.3.1&Status=PENDING&Payout=1.00')).to.equal(403);
    postbacks.setAllowedIps(['127.0.0.1', '::1']);
    failing.add('1000.4.1');
    expect(await send('ActionId=1000.4.1&Status=PENDING&Payout=9.00&SubId1=member-4')).to.equal(200);
    await until(async () => (await postbacks.inbox?.stats())?.dead === 1, 5000);
    // Hostile values in keys and values, delivered and refused.
    const hostile = new URLSearchParams({
      ActionId: '1000.5.1',
      Status: 'PENDING',
      Payout: '2.00',
      SubId1: HOSTILE.script,
      SubId2: HOSTILE.image,
      SubId3: HOSTILE.link,
      SharedId: HOSTILE.rtl,
      [HOSTILE.key]: HOSTILE.image,
    });
    expect(await send(hostile.toString())).to.equal(200);
    // Refused for its empty id: its fields show on the Refused page.
    hostile.set('ActionId', '');
    expect(await send(hostile.toString())).to.equal(400);
    await until(() => delivered.includes('1000.5.1'), 5000);
    // A hostile action id: refused (not an impact.com id), yet on the Postbacks page's links and its own timeline.
    expect(
      await send(new URLSearchParams({ ActionId: HOSTILE.image, Status: 'PENDING', Payout: '1.00' }).toString()),
    ).to.equal(400);
    api.put(apiAction('1000.6.1', 'APPROVED', '3.00'));
  });

  after(async () => {
    await server.close();
    await postbacks.close();
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });

  describe('access', () => {
    const paths = ['/', '/postbacks', '/refused', '/inbox', '/reconcile', '/actions/1000.1.1', '/assets/console.css'];

    it('answers 403 on every path, the stylesheet and posts included, when authorize says no', async () => {
      for (const pagePath of paths) {
        const res = await fetch(`${server.base}/console${pagePath}`);
        expect(res.status, pagePath).to.equal(403);
        expect(await res.text()).not.to.include('1000.1.1');
      }
      const post = await fetch(`${server.base}/console/inbox/retry`, { method: 'POST', body: 'target=dead' });
      expect(post.status).to.equal(403);
      expect((await postbacks.inbox?.stats())?.dead).to.equal(1);
    });

    it('serves every page with a strict Content-Security-Policy when authorize says yes', async () => {
      for (const pagePath of paths) {
        const res = await fetch(`${server.base}/console${pagePath}`, { headers: ADMIN });
        expect(res.status, pagePath).to.equal(200);
        expect(res.headers.get('content-security-policy')).to.equal(
          "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        );
        expect(res.headers.get('x-content-type-options')).to.equal('nosniff');
      }
    });

    it('refuses a post without the CSRF token, or with another cookie’s, and retries nothing', async () => {
      const page = await fetch(`${server.base}/console/inbox`, { headers: ADMIN });
      const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      const token = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
      expect(token).to.have.length(43);
      expect(page.headers.get('set-cookie')).to.match(
        /^impact_console_csrf=[\w-]{43}; Path=\/console; HttpOnly; SameSite=Strict$/,
      );
      const post = (headers: Record<string, string>, body: string) =>
        fetch(`${server.base}/console/inbox/retry`, {
          method: 'POST',
          redirect: 'manual',
          headers: { ...ADMIN, 'content-type': 'application/x-www-form-urlencoded', ...headers },
          body,
        });
      expect((await post({ cookie }, 'target=dead')).status).to.equal(403);
      expect((await post({}, `target=dead&csrf=${token}`)).status).to.equal(403);
      const other = `impact_console_csrf=${'A'.repeat(43)}`;
      expect((await post({ cookie: other }, `target=dead&csrf=${token}`)).status).to.equal(403);
      expect((await postbacks.inbox?.stats())?.dead).to.equal(1);
    });

    it('read only: shows no retry button and refuses a retry posted anyway', async () => {
      const page = await fetch(`${server.base}/read-only/inbox?status=dead`, { headers: ADMIN });
      const text = await page.text();
      expect(text).to.include('1000.4.1');
      expect(text).not.to.include('<button');
      const post = await fetch(`${server.base}/read-only/inbox/retry`, {
        method: 'POST',
        headers: { ...ADMIN, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'target=dead',
      });
      expect(post.status).to.equal(403);
      expect((await postbacks.inbox?.stats())?.dead).to.equal(1);
    });

    it('lets in only an authorize that gives true: a truthy value, a throw or a rejection is a 403', async () => {
      const verdicts: ((req: express.Request) => boolean | Promise<boolean>)[] = [
        (req) => req.headers['x-admin'] as unknown as boolean,
        () => 1 as unknown as boolean,
        () => {
          throw new Error('session store down');
        },
        () => Promise.reject(new Error('session store down')),
      ];
      for (const authorize of verdicts) {
        const app = express();
        app.use('/c', createPostbackConsole(postbacks, { authorize }));
        const other = await startServer(app);
        try {
          const res = await fetch(`${other.base}/c/inbox`, { headers: ADMIN });
          expect(res.status, authorize.toString()).to.equal(403);
        } finally {
          await other.close();
        }
      }
    });

    it('routes only paths it serves: no empty or dot segment, no backslash, no malformed escape', async () => {
      // Sent as written: fetch would resolve the dot segments before sending.
      const statusOf = (odd: string): Promise<number | undefined> =>
        new Promise((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port: server.port, path: `/console${odd}`, headers: ADMIN }, (res) => {
              res.resume();
              resolve(res.statusCode);
            })
            .on('error', reject);
        });
      for (const odd of [
        '//evil.example/inbox',
        '/./inbox',
        '/x/../inbox',
        '/%2e%2e/inbox',
        '/\\evil/inbox',
        '/actions/%E0',
      ]) {
        expect(await statusOf(odd), odd).to.equal(404);
      }
      const post = await fetch(`${server.base}/console//x/inbox/retry`, {
        method: 'POST',
        headers: { ...ADMIN, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'target=dead',
      });
      expect(post.status).to.be.oneOf([403, 404]);
      expect((await postbacks.inbox?.stats())?.dead).to.equal(1);
    });

    it('links a sender’s action id as one path segment, and shows a lone surrogate without failing', async () => {
      for (const id of ['../../../logout', 'a/b', '\ud800']) {
        expect(
          await send(new URLSearchParams({ ActionId: id, Status: 'PENDING', Payout: 'x' }).toString()),
        ).to.be.oneOf([200, 400]);
      }
      const res = await fetch(`${server.base}/console/postbacks`, { headers: ADMIN });
      expect(res.status).to.equal(200);
      const text = await res.text();
      expect(text).to.include('href="/console/actions/..%2F..%2F..%2Flogout"');
      expect(text).to.include('href="/console/actions/a%2Fb"');
      expect(text).not.to.match(/href="[^"]*\.\.\/\.\./);
    });

    for (const [name, host] of [
      ['Express 5', express],
      // Express 4's parsers leave req.body = {} on a request they do not parse.
      ['Express 4', express4 as unknown as typeof express],
    ] as const) {
      it(`reads its forms behind a JSON body parser of the host’s (${name})`, async () => {
        const app = host();
        app.use(host.json());
        app.use('/c', createPostbackConsole(postbacks, { authorize: (req) => req.headers['x-admin'] === 'yes' }));
        const other = await startServer(app);
        try {
          const page = await fetch(`${other.base}/c/inbox`, { headers: ADMIN });
          const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
          const token = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
          const res = await fetch(`${other.base}/c/inbox/retry`, {
            method: 'POST',
            redirect: 'manual',
            headers: { ...ADMIN, cookie, 'content-type': 'application/x-www-form-urlencoded' },
            body: `target=999999&csrf=${token}`,
          });
          expect(res.status).to.equal(303);
          expect(res.headers.get('location')).to.equal('/c/inbox');
        } finally {
          await other.close();
        }
      });
    }

    it('answers a form over 16 KB 413, and an impossible or too long reconciliation range 400', async () => {
      const big = await fetch(`${server.base}/console/inbox/retry`, {
        method: 'POST',
        headers: { ...ADMIN, 'content-type': 'application/x-www-form-urlencoded' },
        body: `target=dead&pad=${'x'.repeat(20_000)}`,
      });
      expect(big.status).to.equal(413);
      const page = await fetch(`${server.base}/console/reconcile`, { headers: ADMIN });
      const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      const token = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
      for (const [since, until] of [
        ['2026-02-31', '2026-03-05'],
        ['2020-01-01', '2026-12-01'],
      ]) {
        const res = await fetch(`${server.base}/console/reconcile`, {
          method: 'POST',
          redirect: 'manual',
          headers: { ...ADMIN, cookie, 'content-type': 'application/x-www-form-urlencoded' },
          body: `since=${since}&until=${until}&csrf=${token}`,
        });
        expect(res.status, `${since} to ${until}`).to.equal(400);
      }
      expect(api.requests).to.deep.equal([]);
    });

    it("shows the router's last reconciliation on the Overview, whoever ran it", async () => {
      const since = new Date('2020-01-01T00:00:00Z');
      const report = await postbacks.reconcile({
        accountSid: SID,
        authToken: TOKEN,
        baseUrl: api.baseUrl,
        since,
        until: new Date('2020-01-02T00:00:00Z'),
      });
      expect(postbacks.lastReconciliation()).to.deep.include({ since, report, error: null });
      const text = await (await fetch(`${server.base}/console/`, { headers: ADMIN })).text();
      expect(text).to.include('<time datetime="2020-01-01T00:00:00.000Z">');
      expect(text).to.match(/<th>checked<\/th>\s*<td class="num">0<\/td>/);
    });

    it('takes a form made by another instance with the same secret, and refuses one made with another', async () => {
      const secret = 'a-shared-console-secret-of-32-chars-or-more';
      const instance = async (withSecret: string) => {
        const app = express();
        app.use('/c', createPostbackConsole(postbacks, { authorize: () => true, secret: withSecret }));
        return startServer(app);
      };
      const [first, second, other] = await Promise.all([
        instance(secret),
        instance(secret),
        instance(`${secret}-not-the-same`),
      ]);
      try {
        const page = await fetch(`${first.base}/c/inbox`);
        const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
        const token = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
        const retry = async (to: RunningServer) =>
          (
            await fetch(`${to.base}/c/inbox/retry`, {
              method: 'POST',
              redirect: 'manual',
              headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
              body: `target=999999&csrf=${token}`,
            })
          ).status;
        expect(await retry(second)).to.equal(303);
        expect(await retry(other)).to.equal(403);
      } finally {
        await Promise.all([first.close(), second.close(), other.close()]);
      }
      expect(() => createPostbackConsole(postbacks, { authorize: () => true, secret: 'short' })).to.throw(
        TypeError,
        'option secret must be a string of 32 characters or more',
      );
    });

    it('throws at setup without authorize, saying why', () => {
      expect(() => createPostbackConsole(postbacks, {} as never)).to.throw(TypeError, /option authorize is required/);
      expect(() => createPostbackConsole(postbacks, { authorize: () => true, readOnly: 'yes' as never })).to.throw(
        TypeError,
        'option readOnly must be true or false',
      );
    });
  });

  describe('in Chromium', function () {
    let browser: Browser | undefined;
    let page: Page;
    const dialogs: string[] = [];

    before(async function () {
      if (!existsSync(CHROMIUM)) {
        const message = `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
        if (process.env['REQUIRE_BROWSER'] === '1')
          throw new Error(`${message}, and REQUIRE_BROWSER=1 makes that a failure`);
        console.log(`    SKIPPED: ${message}; REQUIRE_BROWSER=1 turns this skip into a failure`);
        this.skip();
      }
      const { chromium } = await import('playwright-core');
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      });
      const context = await browser.newContext({ extraHTTPHeaders: ADMIN, viewport: { width: 1280, height: 900 } });
      page = await context.newPage();
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.dismiss();
      });
      await mkdir(SCREENSHOTS, { recursive: true });
    });
    after(async () => {
      await browser?.close();
    });

    async function open(pagePath: string, name: string): Promise<void> {
      const res = await page.goto(`${server.base}/console${pagePath}`);
      expect(res?.status(), pagePath).to.equal(200);
      const file = path.join(SCREENSHOTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.log(`      screenshot: ${path.relative(ROOT, file)}`);
    }

    /** No script ran, no element a sender wrote was made. */
    async function expectNothingRan(): Promise<void> {
      expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).to.equal(undefined);
      expect(await page.locator('script').count()).to.equal(0);
      expect(await page.locator('img').count()).to.equal(0);
      expect(await page.locator('main b').count()).to.equal(0);
      // Escaping, not only the CSP: no attribute or link a sender wrote became markup.
      expect(await page.locator('[onerror], [onmouseover], [onload], a[href^="javascript:"]').count()).to.equal(0);
      expect(dialogs).to.deep.equal([]);
    }

    it('Overview: the chart by outcome, totals by route, refusals by code and the inbox', async () => {
      await open('/', 'overview');
      expect(await page.locator('svg.chart rect').count()).to.be.at.least(3);
      const text = await page.locator('main').innerText();
      expect(text).to.include('field.missing');
      expect(text).to.include('ip.forbidden');
      expect(await page.locator('svg.chart title').first().textContent()).to.match(/UTC: delivered \d+/);
      await expectNothingRan();
    });

    it('Postbacks: every outcome, the hostile values as text, filters and paging', async () => {
      await open('/postbacks', 'postbacks');
      const outcomes = await page.locator('span.outcome').allTextContents();
      for (const outcome of ['stored', 'delivered', 'duplicate', 'stale', 'rejected', 'failed']) {
        expect(outcomes, outcome).to.include(outcome);
      }
      // textContent: the fields are in closed disclosures, which innerText leaves out.
      const main = (await page.locator('main').textContent()) ?? '';
      expect(main).to.include(HOSTILE.script);
      expect(main).to.include(HOSTILE.key);
      expect(main).to.include(HOSTILE.link);
      // The direction override is shown, not obeyed.
      expect(main).to.include('safeU+202Egpj.exe');
      await page.locator('details').first().click();
      await expectNothingRan();
      await page.fill('input[name="subId1"]', 'member-1');
      await page.selectOption('select[name="outcome"]', 'stale');
      await page.click('button[type="submit"]');
      expect(await page.locator('span.outcome').allTextContents()).to.deep.equal(['stale']);
    });

    it('Action: the timeline oldest first with the state moved from and to, and the journal’s state', async () => {
      await open('/actions/1000.1.1', 'action');
      const rows = await page
        .locator('table.entries > tbody > tr')
        .evaluateAll((trs: { readonly children: ArrayLike<{ readonly textContent: string | null }> }[]) =>
          trs.map((tr) => [1, 2, 5].map((cell) => tr.children[cell]?.textContent?.trim())),
        );
      expect(rows).to.deep.equal([
        ['postback', 'stored', 'unchanged'],
        ['inbox', 'delivered', 'new → PENDING 5.00'],
        ['postback', 'duplicate', 'unchanged'],
        ['postback', 'stored', 'unchanged'],
        ['inbox', 'delivered', 'PENDING 5.00 → APPROVED 5.00'],
        ['postback', 'stored', 'unchanged'],
        ['inbox', 'stale', 'unchanged'],
      ]);
      expect(await page.locator('table.report').innerText()).to.match(/status\s+APPROVED/);
    });

    it('Refused: grouped by code, with the reason in plain words and the unexpanded placeholder', async () => {
      await open('/refused', 'refused');
      const missing = (await page.locator('section#field\\.missing').textContent()) ?? '';
      expect(missing).to.include('left as a placeholder such as {ActionId}');
      expect(missing).to.include('ActionId={ActionId}');
      expect(missing).to.include(HOSTILE.script);
      const forbidden = await page.locator('section#ip\\.forbidden').innerText();
      expect(forbidden).to.include('allowedIps');
      await expectNothingRan();
    });

    it('Inbox: the dead row with its last error; Retry makes it pending, and it is delivered', async () => {
      await open('/inbox?status=dead', 'inbox');
      const row = page.locator('table.entries > tbody > tr', { hasText: '1000.4.1' });
      expect(await row.innerText()).to.include('the postback could not be handled; retry later');
      failing.delete('1000.4.1');
      await row.locator('button', { hasText: 'Retry' }).click();
      await page.waitForURL(`${server.base}/console/inbox`);
      await until(() => delivered.includes('1000.4.1'), 5000);
      expect((await postbacks.inbox?.stats())?.dead).to.equal(0);
    });

    it('Action: a hostile action id shows as text in the title and the timeline', async () => {
      await open(`/actions/${encodeURIComponent(HOSTILE.image)}`, 'action-hostile');
      expect(await page.locator('h1').textContent()).to.equal(`Action ${HOSTILE.image}`);
      expect(await page.title()).to.include(HOSTILE.image);
      await expectNothingRan();
    });

    it('Reconcile: runs for a date range and shows its report', async () => {
      await open('/reconcile', 'reconcile');
      const today = new Date();
      await page.fill('input[name="since"]', new Date(today.getTime() - 2 * 86_400_000).toISOString().slice(0, 10));
      await page.fill('input[name="until"]', new Date(today.getTime() + 86_400_000).toISOString().slice(0, 10));
      await page.click('button[type="submit"]');
      await page.waitForURL(`${server.base}/console/reconcile`);
      const report = await page.locator('table.report').innerText();
      expect(report).to.match(/checked\s+1/);
      expect(report).to.match(/delivered\s+1/);
      expect(delivered).to.include('1000.6.1');
      await page.screenshot({ path: path.join(SCREENSHOTS, 'reconcile-report.png'), fullPage: true });
    });
  });
});
