import net from 'node:net';
import { expect } from 'chai';
import express from 'express';
import { requestPath } from '../lib/http/request-path';
import { startServer, type RunningServer } from './helpers/server';

/** Sends one raw request line, so request targets supertest would normalise go as written. */
function requestLine(port: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.end(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    });
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('end', () => {
      resolve(answer);
    });
    socket.on('error', reject);
  });
}

describe('request path under a mount point', () => {
  let running: RunningServer;
  const seen: { ours: string; express: string }[] = [];

  before(async () => {
    const app = express();
    app.use('/impact', (req, res) => {
      seen.push({ ours: requestPath(req), express: req.path });
      res.end('seen');
    });
    running = await startServer(app);
  });
  after(async () => {
    await running.close();
  });

  const targets = [
    '/impact/actions',
    '/impact/actions?ActionId=1&Payout=2',
    '/impact/Actions/',
    '/impact/actions/?a=b?c',
    '/impact/actions%20x?x',
    '/impact/actions#frag?x',
    `http://127.0.0.1/impact/actions?ActionId=1`,
    '/impact?x=1',
    '/impact/',
    '/impact//actions',
  ];
  for (const target of targets) {
    it(`is what Express's req.path gives for ${target}`, async () => {
      seen.length = 0;
      const answer = await requestLine(running.port, target);
      expect(answer).to.match(/^HTTP\/1\.1 200/);
      expect(seen).to.have.length(1);
      expect(seen[0]?.ours).to.equal(seen[0]?.express);
    });
  }
});
