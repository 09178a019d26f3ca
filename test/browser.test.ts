import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { createExampleApp } from '../example-app/app';
import { startServer } from './helpers/server';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

describe('example app in a real browser', function () {
  this.timeout(60_000);

  before(function () {
    // .ci/run drives the browser once, on one Node.js version; the others skip it, and say so.
    if (process.env['BROWSER_TEST'] === 'off') {
      console.log('    SKIPPED: BROWSER_TEST=off (the browser test runs on one Node.js version in CI)');
      this.skip();
    }
    if (existsSync(CHROMIUM)) return;
    const message = `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
    if (process.env['REQUIRE_BROWSER'] === '1')
      throw new Error(`${message}, and REQUIRE_BROWSER=1 makes that a failure`);
    console.log(`    SKIPPED: ${message}; REQUIRE_BROWSER=1 turns this skip into a failure`);
    this.skip();
  });

  it('shows the balances after a simulated lifecycle', async () => {
    const { chromium } = await import('playwright-core');
    const { app } = await createExampleApp({ print: () => undefined });
    const server = await startServer(app);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    try {
      const send = async (query: string) => {
        const res = await fetch(`${server.base}/impact/actions?${query}`);
        expect(res.status).to.equal(200);
      };
      await send('ActionId=1.1&SubId1=alice&Payout=12.50&Status=PENDING&Currency=USD');
      await send('ActionId=2.1&SubId1=bob&Payout=20.00&Status=PENDING&Currency=USD');
      await send('ActionId=2.1&SubId1=bob&Payout=15.00&DeltaPayout=-5.00&Status=PENDING&Currency=USD');
      await send('ActionId=1.1&SubId1=alice&Payout=12.50&Status=REVERSED&Currency=USD');
      const page = await browser.newPage();
      await page.goto(`${server.base}/`);
      const cells = await page.locator('#balances tbody td').allTextContents();
      expect(cells).to.deep.equal(['alice', '0.00', '0.00', '1', 'bob', '15.00', '0.00', '1']);
      expect(await page.locator('#postbacks tbody tr').count()).to.equal(4);
      // The page refreshes itself: a postback sent now shows without a reload by the test.
      await send('ActionId=3.1&SubId1=carol&Payout=7.00&Status=PENDING&Currency=USD');
      await page.waitForSelector('#balances tr[data-user="carol"]', { timeout: 10_000 });
      expect(await page.textContent('#balances tr[data-user="carol"] td.pending')).to.equal('7.00');
    } finally {
      await browser.close();
      await server.close();
    }
  });
});
