import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface RunningServer {
  readonly server: http.Server;
  readonly port: number;
  readonly base: string;
  close(): Promise<void>;
}

/** Starts `handler` on 127.0.0.1 on a free port. */
export async function startServer(
  handler: http.RequestListener,
  configure?: (server: http.Server) => void,
): Promise<RunningServer> {
  const server = http.createServer(handler);
  configure?.(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Writes bytes on a raw TCP connection and resolves with everything the server sent back before
 * closing (or before `waitMs` passed), for requests no HTTP client would send.
 */
export function rawExchange(
  port: number,
  chunks: readonly (string | Buffer)[],
  options: { waitMs?: number; destroyAfterWrite?: boolean } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const timer = setTimeout(finish, options.waitMs ?? 2000);
    socket.on('data', (data: Buffer) => {
      received += data.toString('latin1');
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', (error) => {
      if (received !== '') finish();
      else if ((error as NodeJS.ErrnoException).code === 'ECONNRESET') finish();
      else reject(error);
    });
    socket.on('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
      if (options.destroyAfterWrite === true) setTimeout(() => socket.destroy(), 20);
    });
  });
}

/** The status code of the first response in a raw exchange, or 0 if none came. */
export function statusOf(response: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
}

/**
 * A port on 127.0.0.1 where nothing listens now: the OS picks it, so it is neither in use nor
 * taken by an outgoing connection, as a random one in the ephemeral range may be.
 */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
