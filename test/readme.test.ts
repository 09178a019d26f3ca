import { execFile, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { ERROR_STATUS } from '../lib';
import { freePort } from './helpers/server';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const SCRATCH = path.join(ROOT, '.tmp', 'readme');

async function readme(): Promise<string> {
  return readFile(path.join(ROOT, 'README.md'), 'utf8');
}

/** The first ```ts block after a heading. */
function codeAfter(text: string, heading: string): string {
  const start = text.indexOf(`\n${heading}\n`);
  const match = /```ts\n([\s\S]*?)```/.exec(text.slice(start));
  if (start === -1 || match?.[1] === undefined) throw new Error(`no ts block after ${heading}`);
  return match[1];
}

describe('README', function () {
  this.timeout(60_000);

  it('opens with the command that starts the example and the one that runs the tests', async () => {
    const text = await readme();
    const block = /```sh\n([\s\S]*?)```/.exec(text)?.[1] ?? '';
    expect(block).to.include('npm run example');
    expect(block).to.include('npm test');
    const scripts = (
      JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    ).scripts;
    expect(scripts).to.have.property('example');
    expect(scripts).to.have.property('test');
  });

  it('lists every error code with its status, and no other, in docs/errors.md, which it links', async () => {
    expect(await readme()).to.include('[docs/errors.md](docs/errors.md)');
    const section = await readFile(path.join(ROOT, 'docs/errors.md'), 'utf8');
    const rows = [...section.matchAll(/^\|\s*`([a-z_.]+)`\s*\|\s*(\d{3})\s*\|/gm)].map(([, code, status]) => [
      code,
      Number(status),
    ]);
    expect(Object.fromEntries(rows)).to.deep.equal(ERROR_STATUS);
  });

  it('is at most 20 KB, with no table line over 160 characters, and a table of contents that leads somewhere', async () => {
    const text = await readme();
    expect(Buffer.byteLength(text)).to.be.at.most(20 * 1024);
    const wide = text.split('\n').filter((line) => line.startsWith('|') && line.length > 160);
    expect(wide).to.deep.equal([]);
    // GitHub's anchors: lower case, punctuation dropped, spaces as hyphens.
    const anchors = new Set(
      [...text.matchAll(/^#{2,3} (.+)$/gm)].map(([, title]) =>
        (title ?? '')
          .toLowerCase()
          .replace(/[^\w\- ]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    const contents = text.slice(text.indexOf('## Contents'), text.indexOf('## Install'));
    const links = [...contents.matchAll(/\]\(#([^)]+)\)/g)].map(([, anchor]) => anchor);
    expect(links.length).to.be.at.least(10);
    for (const link of [...text.matchAll(/\]\(#([^)]+)\)/g)].map(([, anchor]) => anchor)) {
      expect(anchors.has(link ?? ''), `#${link ?? ''}`).to.equal(true);
    }
  });

  it('links only to the web and to files the published package holds', async () => {
    const text = await readme();
    const files = (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;
    for (const [, target] of text.matchAll(/\]\(([^)#]+)\)/g)) {
      if (target === undefined || /^https?:\/\//.test(target)) continue;
      expect(files, target).to.include(target);
    }
  });

  it('has TypeScript snippets that all compile against the package, those of the guides in docs/ too', async () => {
    const tsBlocks = (text: string): string[] =>
      [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map(([, code]) => code ?? '');
    const readmeBlocks = tsBlocks(await readme());
    expect(readmeBlocks.length).to.be.at.least(6);
    const guides = (await readdir(path.join(ROOT, 'docs'))).filter((name) => name.endsWith('.md'));
    const guideBlocks = await Promise.all(
      guides.map(async (name) => tsBlocks(await readFile(path.join(ROOT, 'docs', name), 'utf8'))),
    );
    expect(guideBlocks.flat().length).to.be.at.least(1);
    const blocks = [...readmeBlocks, ...guideBlocks.flat()];
    const dir = path.join(SCRATCH, 'snippets');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const names = await Promise.all(
      blocks.map(async (code, index) => {
        const name = `snippet-${index + 1}.ts`;
        // Each snippet is a module of its own, as a user would paste it into a file.
        await writeFile(path.join(dir, name), `${code}\nexport {};\n`);
        return name;
      }),
    );
    await writeFile(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../../tsconfig.json',
        compilerOptions: { noEmit: true, rootDir: '.', module: 'nodenext', moduleResolution: 'nodenext' },
        files: names,
        include: [],
      }),
    );
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', dir], { cwd: ROOT }).then(
      () => '',
      (error: unknown) => {
        const { stdout, message } = error as { stdout?: string; message?: string };
        return stdout ?? message ?? 'tsc failed';
      },
    );
    expect(result).to.equal('');
  });

  it('has a quick start that serves the postback routes on loopback, and keeps to the allow-list it is given', async () => {
    const snippet = codeAfter(await readme(), '## Quick start');
    await mkdir(SCRATCH, { recursive: true });
    const file = path.join(SCRATCH, 'quick-start.ts');
    await writeFile(file, snippet);
    const ask = async (env: Record<string, string>): Promise<[number | undefined, string | undefined]> => {
      const port = await freePort();
      const child = spawn(process.execPath, ['--import', 'tsx', file], {
        cwd: ROOT,
        env: { ...process.env, PORT: String(port), ...env },
        stdio: 'ignore',
      });
      try {
        let answer: Response | undefined;
        for (let attempt = 0; attempt < 100 && answer === undefined; attempt += 1) {
          answer = await fetch(
            `http://127.0.0.1:${port}/impact/actions?ActionId=1.2.3&Status=PENDING&Payout=5.00`,
          ).catch(async () => {
            await new Promise((resolve) => setTimeout(resolve, 100));
            return undefined;
          });
        }
        return [answer?.status, await answer?.text()];
      } finally {
        child.kill();
      }
    };
    expect(await ask({})).to.deep.equal([200, 'OK']);
    expect(await ask({ IMPACT_ALLOWED_IPS: '192.0.2.0/24' })).to.deep.equal([
      403,
      'ip.forbidden: this address may not send postbacks',
    ]);
  });
});
