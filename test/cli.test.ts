import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { parseStringPromise } from 'xml2js';
import { createApp } from './helpers/create-app';
import { startServer, type RunningServer } from './helpers/server';

const BIN = path.resolve(__dirname, '../dist/cli/main.js');

/** Runs the built binary; resolves with its output and exit code, whatever the code. */
async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args]);
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failure = error as { stdout: string; stderr: string; code: number };
    return { stdout: failure.stdout, stderr: failure.stderr, code: failure.code };
  }
}

describe('impact-postbacks command', function () {
  this.timeout(30_000);
  let server: RunningServer;
  let target: ReturnType<typeof createApp>;

  beforeEach(async () => {
    target = createApp();
    server = await startServer(target.app);
  });
  afterEach(async () => server.close());

  describe('help and usage errors', () => {
    for (const command of [[], ['--help'], ['templates', '--help'], ['send', '--help'], ['check', '--help']]) {
      it(`prints help for ${command.join(' ') || '(nothing)'}`, async () => {
        const { stdout, code } = await cli(...command);
        expect(code).to.equal(0);
        expect(stdout).to.match(/^Usage: impact-postbacks/);
      });
    }
    const mistakes: [string[], RegExp][] = [
      [['frobnicate'], /unknown command "frobnicate"/],
      [['templates'], /--url is required/],
      [['templates', '--url', 'ftp://x'], /--url must be an http or https URL/],
      [
        ['templates', '--url', 'http://x', '--kind', 'sale'],
        /--kind must be one of action, clearing, inquiry, catalog/,
      ],
      [['send', '--url', 'http://x'], /--scenario is required/],
      [['send', '--url', 'http://x', '--scenario', 'x', '--bogus'], /Unknown option '--bogus'/],
      // An unset shell variable: --token-param "$TOKEN".
      [['templates', '--url', 'http://x', '--token-param', ''], /--token-param is empty \(an unset shell variable\?\)/],
      [['templates', '--url', 'http://x', '--token-param', '--token', ''], /--token is empty/],
      [['send', '--url', 'http://x', '--scenario', 'tracked', '--token', ''], /--token is empty/],
      [['check', '--url', 'http://x', '--token', ''], /--token is empty/],
    ];
    for (const flag of ['--version', '-v', 'version']) {
      it(`prints the package's version for ${flag}`, async () => {
        const { version } = JSON.parse(await readFile(path.resolve(__dirname, '../package.json'), 'utf8')) as {
          version: string;
        };
        expect(await cli(flag)).to.deep.equal({ stdout: `${version}\n`, stderr: '', code: 0 });
      });
    }
    for (const [args, message] of mistakes) {
      it(`exits 2 with a plain message for ${args.join(' ')}`, async () => {
        const { stderr, code } = await cli(...args);
        expect(code).to.equal(2);
        expect(stderr).to.match(message);
        expect(stderr).to.not.match(/\n\s+at /);
      });
    }
  });

  describe('templates', () => {
    it('prints a GET URL with every action placeholder', async () => {
      const { stdout, code } = await cli('templates', '--url', 'https://shop.example/impact', '--kind', 'action');
      expect(code).to.equal(0);
      expect(stdout).to.include('Method: GET');
      expect(stdout).to.include(
        'URL: https://shop.example/impact/actions?ActionId={ActionId}&CampaignId={CampaignId}&',
      );
      for (const placeholder of [
        'ActionId',
        'Payout',
        'DeltaPayout',
        'Currency',
        'EventDate',
        'SubId1',
        'SubId3',
        'Oid',
      ]) {
        expect(stdout).to.include(`${placeholder}={${placeholder}}`);
      }
    });

    it('takes --token-param with a value or without one, and warns about --token alone', async () => {
      const base = ['templates', '--url', 'https://shop.example/impact', '--kind', 'action'];
      const valued = await cli(...base, '--token-param', 'abc');
      expect(valued.code).to.equal(0);
      expect(valued.stdout).to.include('https://shop.example/impact/actions?token=abc&ActionId={ActionId}');
      const bare = await cli(...base, '--token-param', '--json');
      expect(bare.code).to.equal(0);
      expect((JSON.parse(bare.stdout) as { url: string }[])[0]?.url).to.match(/\?token=YOUR_TOKEN&/);
      const legacy = await cli(...base, '--token-param', '--token', 'xyz');
      expect(legacy.stdout).to.include('?token=xyz&');
      const alone = await cli(...base, '--token', 'xyz');
      expect(alone.code).to.equal(0);
      expect(alone.stderr).to.include('warning: --token does nothing without --token-param');
      expect(alone.stdout).not.to.include('token=');
    });

    it('prints valid JSON and XML body templates, and machine-readable --json', async () => {
      const json = await cli(
        'templates',
        '--url',
        'https://shop.example/impact?source=impact',
        '--format',
        'json',
        '--json',
        '--token-param',
        's3cret',
      );
      const list = JSON.parse(json.stdout) as {
        kind: string;
        format: string;
        method: string;
        url: string;
        contentType?: string;
        body?: string;
      }[];
      expect(list.map((template) => template.kind)).to.deep.equal(['action', 'clearing', 'inquiry', 'catalog']);
      for (const template of list) {
        expect(template).to.include({ format: 'json', method: 'POST', contentType: 'application/json' });
        expect(template.url).to.match(/^https:\/\/shop\.example\/impact\/\w+\?source=impact&token=s3cret$/);
        const body = JSON.parse(template.body ?? '') as Record<string, string>;
        for (const [key, value] of Object.entries(body)) expect(value).to.equal(`{${key}}`);
      }
      expect(Object.keys(JSON.parse(list[2]?.body ?? '{}') as object)).to.include.members([
        'InquiryId',
        'ResolutionStatus',
        'FinalPayout',
      ]);
      const xml = JSON.parse(
        (await cli('templates', '--url', 'http://x/impact', '--format', 'xml', '--json')).stdout,
      ) as { body: string }[];
      for (const template of xml) {
        const parsed = (await parseStringPromise(template.body)) as { Postback: Record<string, string[]> };
        expect(Object.keys(parsed.Postback).length).to.be.greaterThan(1);
      }
    });

    it('produces templates the router accepts once impact.com fills them in', async () => {
      for (const format of ['query', 'json', 'xml', 'form']) {
        const list = JSON.parse(
          (await cli('templates', '--url', `${server.base}/impact`, '--format', format, '--json')).stdout,
        ) as {
          kind: string;
          method: string;
          url: string;
          contentType?: string;
          body?: string;
        }[];
        for (const template of list) {
          // Fill each placeholder the way impact.com would: ids, amounts and dates where they belong.
          const fill = (text: string) =>
            text.replace(/\{(\w+)\}/g, (_, name: string) =>
              /Date$/.test(name)
                ? '2024-09-10T10:42:38-07:00'
                : /(Payout|Amount)$/.test(name)
                  ? '1.00'
                  : /Currency$/.test(name)
                    ? 'USD'
                    : `${format}-${name}-1`,
            );
          const res = await fetch(fill(template.url), {
            method: template.method,
            headers: template.contentType === undefined ? {} : { 'content-type': template.contentType },
            ...(template.body === undefined ? {} : { body: fill(template.body) }),
          });
          expect(res.status, `${format} ${template.kind}: ${await res.text()}`).to.equal(200);
        }
      }
      expect(target.events.action).to.have.length(8);
      expect(target.events.inquiry).to.have.length(4);
      expect(target.events.catalog).to.have.length(4);
      expect(target.events.rejected).to.deep.equal([]);
      expect(target.events.action[0]?.warnings).to.deep.equal([]);
    });
  });

  describe('send', () => {
    it('plays the whole lifecycle, one line per request and a summary', async () => {
      const { stdout, code } = await cli(
        'send',
        '--url',
        `${server.base}/impact`,
        '--scenario',
        'lifecycle',
        '--format',
        'xml',
      );
      expect(code).to.equal(0);
      expect(stdout.trim().split('\n')).to.have.length(4);
      expect(stdout).to.match(/ok {3}200 +\d+ ms {2}POST action {3}tracked/);
      expect(stdout).to.include('3 sent, 3 answered 2xx, 0 not');
      expect(target.events.action.map((event) => [event.status, event.payout])).to.deep.equal([
        ['PENDING', '20.00'],
        ['PENDING', '15.00'],
        ['REVERSED', '0.00'],
      ]);
    });

    it('sends every scenario with all, and a retry is answered as a duplicate', async () => {
      const { stdout, code } = await cli('send', '--url', `${server.base}/impact`, '--scenario', 'all');
      expect(code).to.equal(0);
      expect(target.events.duplicate).to.have.length(2);
      expect(stdout.match(/\(duplicate: handled before, not delivered again\)$/gm)).to.have.length(2);
      expect(stdout).to.match(/ok {3}200 .* retry:retry {2}\(duplicate: handled before, not delivered again\)/);
      expect(stdout).to.include('12 sent, 12 answered 2xx (2 as duplicates), 0 not');
      expect(target.events.inquiry.map((event) => event.state)).to.deep.equal(['created', 'resolved']);
      expect(target.events.catalog).to.have.length(1);
      expect(target.events.action.filter((event) => event.trigger === 'clearing')).to.have.length(1);
    });

    it('exits 1 when answers are not 2xx', async () => {
      const refused = createApp({ allowedIps: ['192.0.2.1'] });
      const other = await startServer(refused.app);
      try {
        const { stdout, code } = await cli(
          'send',
          '--url',
          `${other.base}/impact`,
          '--scenario',
          'tracked',
          '--format',
          'json',
        );
        expect(code).to.equal(1);
        expect(stdout).to.match(/FAIL 403 .* ip\.forbidden/);
        expect(stdout).to.include('1 sent, 0 answered 2xx, 1 not');
      } finally {
        await other.close();
      }
    });
  });

  describe('check', () => {
    it('reports every route and format accepted', async () => {
      const { stdout, code } = await cli('check', '--url', `${server.base}/impact`);
      expect(code).to.equal(0);
      expect(stdout.match(/^accepted /gm)).to.have.length(16);
      expect(stdout).to.include('every route accepts every format');
      expect(stdout).to.include("reached the receiver's listeners, marked statusDetail 'TEST_ACTION'");
      expect(stdout).to.include('run this from such an address');
    });

    it('reports what a receiver refuses, and exits 1', async () => {
      const guarded = createApp({ token: 'right-token' });
      const other = await startServer(guarded.app);
      try {
        const { stdout, code } = await cli('check', '--url', `${other.base}/impact`, '--token', 'wrong-token');
        expect(code).to.equal(1);
        expect(stdout).to.match(/REFUSED {2}action {3}query 403 .* token\.invalid/);
        expect(stdout).to.include('16 of 16 route and format pairs refused');
      } finally {
        await other.close();
      }
    });
  });
});
