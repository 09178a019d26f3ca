import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { ERROR_STATUS } from '../lib';

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

  it('lists every error code with its status, and no other', async () => {
    const text = await readme();
    const section = text.slice(text.indexOf('\n## Errors\n'), text.indexOf('\n## Security notes\n'));
    const rows = [...section.matchAll(/^\|\s*`([a-z_.]+)`\s*\|\s*(\d{3})\s*\|/gm)].map(([, code, status]) => [
      code,
      Number(status),
    ]);
    expect(Object.fromEntries(rows)).to.deep.equal(ERROR_STATUS);
  });

  it('has a quick start that compiles and serves the postback routes', async () => {
    const snippet = codeAfter(await readme(), '## Quick start');
    await mkdir(SCRATCH, { recursive: true });
    const file = path.join(SCRATCH, 'quick-start.ts');
    await writeFile(file, snippet);
    await writeFile(
      path.join(SCRATCH, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../tsconfig.json',
        compilerOptions: { noEmit: true, rootDir: '.' },
        include: ['quick-start.ts'],
      }),
    );
    await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', SCRATCH], { cwd: ROOT });

    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: ROOT,
      env: { ...process.env, PORT: String(port) },
    });
    try {
      let answer: Response | undefined;
      for (let attempt = 0; attempt < 100 && answer === undefined; attempt += 1) {
        answer = await fetch(`http://127.0.0.1:${port}/impact/actions?ActionId=1`).catch(async () => {
          await new Promise((resolve) => setTimeout(resolve, 100));
          return undefined;
        });
      }
      // The snippet allows documentation ranges only, so loopback is refused: the allow-list is in force.
      expect(answer?.status).to.equal(403);
      expect(await answer?.text()).to.equal('ip.forbidden: this address may not send postbacks');
    } finally {
      child.kill();
    }
  });
});
