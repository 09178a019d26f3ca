/**
 * The server side of the load test, in its own process so that its memory is measured alone.
 * Behind a trusted proxy on loopback it admits 198.51.100.0/24 (taken from X-Forwarded-For).
 * On the "report" message it answers with how often each action id was emitted and its RSS.
 */
import express from 'express';
import { createPostbackRouter } from '../../lib';

const emitted = new Map<string, number>();
const postbacks = createPostbackRouter({ allowedIps: ['198.51.100.0/24'], trustProxy: ['127.0.0.1', '::1'] });
postbacks.on('action', async (action) => {
  // A little asynchronous work, so that concurrent copies really overlap.
  await new Promise((resolve) => setTimeout(resolve, 1));
  emitted.set(action.actionId, (emitted.get(action.actionId) ?? 0) + 1);
});

const app = express();
app.use('/impact', postbacks.router);
const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.send?.({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 });
});
server.keepAliveTimeout = 30_000;

function rss(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'rss') process.send?.({ type: 'rss', rss: rss() });
  if (message.type === 'report') process.send?.({ type: 'report', emitted: [...emitted], rss: rss() });
});
