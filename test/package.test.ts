import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');

/**
 * For a describe block: a project of a user's, made before its tests, with the package as
 * `npm pack` makes it and `packages` installed beside it; removed after them. Returns its directory.
 */
function useConsumerProject(prefix: string, packages: readonly string[]): () => string {
  let project = '';
  before(async () => {
    project = await mkdtemp(path.join(tmpdir(), prefix));
    const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', project], { cwd: ROOT });
    const tarball = stdout.trim().split('\n').pop() ?? '';
    await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${tarball}`, ...packages], {
      cwd: project,
    });
  });
  after(async () => {
    if (project !== '') await rm(project, { recursive: true, force: true });
  });
  return () => project;
}

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
  const consumer = useConsumerProject('impact-postbacks-consumer-', ['express@5']);

  it('ships the built code and its types, and no sources or tests', async () => {
    const files = await readdir(path.join(consumer(), 'node_modules', 'impact-postbacks'), { recursive: true });
    expect(files).to.include.members(['dist/index.js', 'dist/index.d.ts', 'README.md', 'package.json']);
    expect(files.filter((file) => file.startsWith('lib') || file.startsWith('test'))).to.deep.equal([]);
  });

  it('works from require()', async () => {
    await writeFile(
      path.join(consumer(), 'use.cjs'),
      CONSUMER(`const { createPostbackRouter, MemoryStore } = require('impact-postbacks');`),
    );
    const { stdout } = await run(process.execPath, ['use.cjs'], { cwd: consumer() });
    expect(JSON.parse(stdout)).to.deep.equal({ status: 200, seen: ['7'], store: 'function' });
  });

  it('works from import', async () => {
    await writeFile(
      path.join(consumer(), 'use.mjs'),
      CONSUMER(
        `import { createRequire } from 'node:module';\nimport { createPostbackRouter, MemoryStore } from 'impact-postbacks';\nconst require = createRequire(import.meta.url);`,
      ),
    );
    const { stdout } = await run(process.execPath, ['use.mjs'], { cwd: consumer() });
    expect(JSON.parse(stdout)).to.deep.equal({ status: 200, seen: ['7'], store: 'function' });
  });
});

/** Sends hostile and tricky XML bodies through the router and prints each answer, and the sax xml2js resolved. */
const XML_CONSUMER = `
const http = require('node:http');
const path = require('node:path');
const express = require('express');
const { createPostbackRouter } = require('impact-postbacks');
const xml2jsDir = path.dirname(require.resolve('xml2js/package.json', { paths: [path.dirname(require.resolve('impact-postbacks'))] }));
const saxVersion = require(require.resolve('sax/package.json', { paths: [xml2jsDir] })).version;
const postbacks = createPostbackRouter({ allowedIps: ['127.0.0.1', '::1'] });
const seen = [];
postbacks.on('action', (event) => { seen.push(event.subId1 ?? null); });
const app = express();
app.use('/impact', postbacks.router);
const bodies = JSON.parse(process.argv[2]);
const server = app.listen(0, '127.0.0.1', async () => {
  const answers = [];
  for (const body of bodies) {
    const res = await fetch('http://127.0.0.1:' + server.address().port + '/impact/actions', {
      method: 'POST', headers: { 'content-type': 'application/xml' }, body,
    });
    answers.push([res.status, (await res.text()).split(':')[0]]);
  }
  console.log(JSON.stringify({ saxVersion, answers, seen }));
  server.close();
});
`;

describe('the packed package in a consumer whose tree resolves an older sax', function () {
  this.timeout(180_000);
  // sax 1.2.4 predates the entity changes of 1.3.0, 1.4 and 1.5; xml2js accepts any sax from 0.6.
  const consumer = useConsumerProject('impact-postbacks-old-sax-', ['express@5', 'sax@1.2.4']);

  it('answers hostile XML exactly as in this repository: DTDs, entities and HTML names refused', async () => {
    const field = (value: string) => `<r><ActionId>1000.1.${value.length}</ActionId><SubId1>${value}</SubId1></r>`;
    const cases: [string, number, string][] = [
      [field('a&amp;b&lt;&gt;&quot;&apos;&#65;&#x42;'), 200, 'OK'],
      [field('<![CDATA[a &nbsp; & b]]>'), 200, 'OK'],
      [field('a&nbsp;b'), 400, 'body.invalid'],
      [field('a&eacute;b'), 400, 'body.invalid'],
      [field('a&AMP;b'), 400, 'body.invalid'],
      [field('a&copy;b'), 400, 'body.invalid'],
      [field('a&#X41;b'), 400, 'body.invalid'],
      [field('a & b'), 400, 'body.invalid'],
      ['<!DOCTYPE r [<!ENTITY x "boom">]><r><ActionId>1</ActionId><SubId1>&x;</SubId1></r>', 400, 'body.invalid'],
      [
        '<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><r><ActionId>1</ActionId><SubId1>&b;</SubId1></r>',
        400,
        'body.invalid',
      ],
      [field('ok'), 200, 'OK'],
    ];
    await writeFile(path.join(consumer(), 'xml.cjs'), XML_CONSUMER);
    const { stdout } = await run(process.execPath, ['xml.cjs', JSON.stringify(cases.map(([body]) => body))], {
      cwd: consumer(),
    });
    const result = JSON.parse(stdout) as { saxVersion: string; answers: [number, string][]; seen: string[] };
    // The consumer's xml2js really runs on the old sax.
    expect(result.saxVersion).to.equal('1.2.4');
    expect(result.answers).to.deep.equal(cases.map(([, status, code]) => [status, code]));
    expect(result.seen).to.deep.equal(['a&b<>"\'AB', 'a &nbsp; & b', 'ok']);
  });
});

describe('the packed package on a host without Express', function () {
  this.timeout(180_000);
  // Express and @opentelemetry/api are optional peers: installing the package alone brings neither.
  const consumer = useConsumerProject('impact-postbacks-no-express-', []);

  it('serves postbacks through nodeHandler on node:http, with no Express and no OpenTelemetry API installed', async () => {
    await writeFile(
      path.join(consumer(), 'use.cjs'),
      `
const http = require('node:http');
const { createPostbackRouter } = require('impact-postbacks');
let express = 'absent';
try { require.resolve('express'); express = 'installed'; } catch {}
let otel = 'absent';
try { require.resolve('@opentelemetry/api'); otel = 'installed'; } catch {}
const postbacks = createPostbackRouter({ allowedIps: ['127.0.0.1', '::1'] });
const seen = [];
postbacks.on('action', (event) => { seen.push(event.actionId); });
const server = http.createServer(postbacks.nodeHandler({ basePath: '/impact' }));
server.listen(0, '127.0.0.1', () => {
  http.get('http://127.0.0.1:' + server.address().port + '/impact/actions?ActionId=8', (res) => {
    res.resume();
    res.on('end', () => {
      console.log(JSON.stringify({ status: res.statusCode, seen, express, otel }));
      server.close();
    });
  });
});
`,
    );
    const { stdout } = await run(process.execPath, ['use.cjs'], { cwd: consumer() });
    expect(JSON.parse(stdout)).to.deep.equal({ status: 200, seen: ['8'], express: 'absent', otel: 'absent' });
  });
});
