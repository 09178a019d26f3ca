import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');

/** Loads the package the way a user's CommonJS or ESM code does, and serves one postback. */
const CONSUMER = (loader: string) => `
${loader}
const http = require('node:http');
const express = require('express');
const postbacks = createPostbackRouter({ allowedIps: ['127.0.0.1', '::1'] });
const seen = [];
postbacks.on('action', (event) => { seen.push(event.actionId); });
const app = express();
app.use('/impact', postbacks.router);
const server = app.listen(0, '127.0.0.1', () => {
  http.get('http://127.0.0.1:' + server.address().port + '/impact/actions?ActionId=7', (res) => {
    res.resume();
    res.on('end', () => {
      console.log(JSON.stringify({ status: res.statusCode, seen, store: typeof MemoryStore }));
      server.close();
    });
  });
});
`;

describe('the packed package', function () {
  this.timeout(180_000);
  let project = '';

  before(async () => {
    project = await mkdtemp(path.join(tmpdir(), 'impact-postbacks-consumer-'));
    const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', project], { cwd: ROOT });
    const tarball = stdout.trim().split('\n').pop() ?? '';
    await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${tarball}`, 'express@5'], {
      cwd: project,
    });
  });

  after(async () => {
    if (project !== '') await rm(project, { recursive: true, force: true });
  });

  it('ships the built code and its types, and no sources or tests', async () => {
    const files = await readdir(path.join(project, 'node_modules', 'impact-postbacks'), { recursive: true });
    expect(files).to.include.members(['dist/index.js', 'dist/index.d.ts', 'README.md', 'package.json']);
    expect(files.filter((file) => file.startsWith('lib') || file.startsWith('test'))).to.deep.equal([]);
  });

  it('works from require()', async () => {
    await writeFile(
      path.join(project, 'use.cjs'),
      CONSUMER(`const { createPostbackRouter, MemoryStore } = require('impact-postbacks');`),
    );
    const { stdout } = await run(process.execPath, ['use.cjs'], { cwd: project });
    expect(JSON.parse(stdout)).to.deep.equal({ status: 200, seen: ['7'], store: 'function' });
  });

  it('works from import', async () => {
    await writeFile(
      path.join(project, 'use.mjs'),
      CONSUMER(
        `import { createRequire } from 'node:module';\nimport { createPostbackRouter, MemoryStore } from 'impact-postbacks';\nconst require = createRequire(import.meta.url);`,
      ),
    );
    const { stdout } = await run(process.execPath, ['use.mjs'], { cwd: project });
    expect(JSON.parse(stdout)).to.deep.equal({ status: 200, seen: ['7'], store: 'function' });
  });
});
