import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export interface ChildServer {
  readonly child: ChildProcess;
  readonly port: number;
  /** Resolves with the first stdout line starting with `prefix`. */
  waitFor(prefix: string): Promise<string>;
  kill(): Promise<void>;
}

/** The router servers of the crash tests, in test/fixtures. */
export type ChildScript = 'crash-server' | 'pg-ledger-server' | 'inbox-server';

/** Starts a crash-test server in a child process and waits until it listens. */
export async function startChildServer(
  env: Record<string, string>,
  script: ChildScript = 'crash-server',
): Promise<ChildServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, `../fixtures/${script}.ts`)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const waiting: { prefix: string; resolve: (line: string) => void }[] = [];
  let buffer = '';
  child.stdout.on('data', (data: Buffer) => {
    buffer += data.toString();
    let newline = buffer.indexOf('\n');
    while (newline !== -1) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      lines.push(line);
      for (const waiter of waiting.filter((candidate) => line.startsWith(candidate.prefix))) {
        waiting.splice(waiting.indexOf(waiter), 1);
        waiter.resolve(line);
      }
      newline = buffer.indexOf('\n');
    }
  });
  const waitFor = (prefix: string): Promise<string> => {
    const seen = lines.find((line) => line.startsWith(prefix));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      waiting.push({ prefix, resolve });
      child.once('exit', (code, signal) =>
        reject(new Error(`server exited (${String(code ?? signal)}) before "${prefix}"`)),
      );
    });
  };
  const port = Number((await waitFor('LISTENING ')).split(' ')[1]);
  return {
    child,
    port,
    waitFor,
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * A server process killed with SIGKILL again and again while senders run, started again after
 * each kill: `victim` is null while it is down. `stop()` ends the killing (the last one started
 * stays up) and gives how many kills there were.
 */
export function killAgainAndAgain(
  first: ChildServer,
  restart: () => Promise<ChildServer>,
  pauseMs: () => number,
): { readonly victim: ChildServer | null; stop(): Promise<number> } {
  // Changed by the loop below and by stop(), read by the senders.
  const state: { victim: ChildServer | null; stopped: boolean; kills: number } = {
    victim: first,
    stopped: false,
    kills: 0,
  };
  const killing = (async () => {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, pauseMs()));
      const dying = state.victim;
      if (state.stopped || dying === null) break;
      state.victim = null;
      await dying.kill();
      state.kills += 1;
      state.victim = await restart();
    }
  })();
  return {
    get victim() {
      return state.victim;
    },
    async stop() {
      state.stopped = true;
      await killing;
      return state.kills;
    },
  };
}
