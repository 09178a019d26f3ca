import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { createApp } from './helpers/create-app';
import { startServer } from './helpers/server';

describe('slow clients', function () {
  this.timeout(30_000);

  it('a slow-loris crowd does not block valid postbacks, and is cut off by headersTimeout', async () => {
    const { app, events } = createApp();
    // The README's advice, scaled down so the test runs in seconds.
    const server = await startServer(app, (http) => {
      http.headersTimeout = 1500;
      http.requestTimeout = 3000;
      (http as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = 250;
    });
    const drips: net.Socket[] = [];
    let closedByServer = 0;
    try {
      await Promise.all(
        Array.from(
          { length: 300 },
          () =>
            new Promise<void>((resolve) => {
              const socket = net.connect(server.port, '127.0.0.1', () => {
                socket.write('GET /impact/actions?ActionId=drip HTTP/1.1\r\nHost: x\r\n');
                resolve();
              });
              socket.on('error', () => undefined);
              socket.on('close', () => {
                closedByServer += 1;
              });
              drips.push(socket);
            }),
        ),
      );
      const dripper = setInterval(() => {
        for (const socket of drips) if (!socket.destroyed) socket.write('X-Drip: 1\r\n');
      }, 200);
      try {
        const started = Date.now();
        const latencies: number[] = [];
        for (let index = 0; index < 50; index += 1) {
          const sent = Date.now();
          const res = await fetch(`${server.base}/impact/actions?ActionId=${index}`);
          expect(res.status).to.equal(200);
          await res.text();
          latencies.push(Date.now() - sent);
        }
        latencies.sort((a, b) => a - b);
        expect(latencies[Math.floor(latencies.length * 0.99)]).to.be.below(1000);
        expect(Date.now() - started).to.be.below(5000);
        expect(events.action).to.have.length(50);
        await sleep(2500);
      } finally {
        clearInterval(dripper);
      }
      expect(closedByServer).to.equal(300);
      expect(events.action.map((event) => event.actionId)).to.not.include('drip');
    } finally {
      for (const socket of drips) socket.destroy();
      await server.close();
    }
  });

  it('a slow POST body is cut off by requestTimeout and emits nothing', async () => {
    const { app, events } = createApp();
    const server = await startServer(app, (http) => {
      http.headersTimeout = 1000;
      http.requestTimeout = 1500;
      (http as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval = 250;
    });
    try {
      const closed = await new Promise<number>((resolve) => {
        const started = Date.now();
        const socket = net.connect(server.port, '127.0.0.1', () => {
          socket.write(
            'POST /impact/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
          );
        });
        const drip = setInterval(() => socket.write(' '), 200);
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearInterval(drip);
          resolve(Date.now() - started);
        });
      });
      expect(closed).to.be.within(1000, 4000);
      expect(events.action).to.deep.equal([]);
    } finally {
      await server.close();
    }
  });
});
