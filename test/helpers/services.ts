import net from 'node:net';

export const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** True when something answers PING at REDIS_URL within a second. */
async function redisAnswers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port || 6379), hostname || '127.0.0.1');
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data: Buffer) => done(data.toString().startsWith('+PONG')));
  });
}

let available: Promise<boolean> | undefined;

/**
 * Skips the calling suite, with a visible message, when no Redis answers; with REQUIRE_REDIS=1
 * (set by .ci/run) a missing Redis fails instead.
 */
export async function requireRedis(context: Mocha.Context): Promise<void> {
  available ??= redisAnswers(REDIS_URL);
  if (await available) return;
  const message = `no Redis answers at ${REDIS_URL} (set REDIS_URL)`;
  if (process.env['REQUIRE_REDIS'] === '1') throw new Error(`${message}, and REQUIRE_REDIS=1 makes that a failure`);
  console.log(`    SKIPPED: ${message}; REQUIRE_REDIS=1 turns this skip into a failure`);
  context.skip();
}
