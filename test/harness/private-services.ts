import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdtemp, open, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { redisAnswers } from '../helpers/services';
import { freePort } from '../helpers/server';

const run = promisify(execFile);

/**
 * Why the real-service fault tests cannot run here, or null when they can: they start private
 * PostgreSQL and Redis servers (killed and restarted at will, unlike the machine's own) and
 * mount a small tmpfs, which needs root and the servers' programs.
 */
export async function privateServicesUnavailable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'they need root (to run initdb as postgres, and to mount a tmpfs)';
  try {
    await run('redis-server', ['--version']);
    await postgresBin();
  } catch (error) {
    return `a server program is missing (${(error as Error).message})`;
  }
  return null;
}

async function postgresBin(): Promise<string> {
  const { stdout } = await run('pg_config', ['--bindir']);
  return stdout.trim();
}

async function asPostgres(program: string, args: readonly string[]): Promise<void> {
  await run('runuser', ['-u', 'postgres', '--', program, ...args]);
}

/** A PostgreSQL server of the test's own, in a temporary directory, on a free port. */
export class PrivatePostgres {
  private constructor(
    private readonly dir: string,
    private readonly bin: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async start(): Promise<PrivatePostgres> {
    const bin = await postgresBin();
    const dir = await mkdtemp(path.join(tmpdir(), 'impact-private-pg-'));
    await chown(dir, ...(await postgresIds()));
    await asPostgres(path.join(bin, 'initdb'), [
      '-D',
      path.join(dir, 'data'),
      '-A',
      'trust',
      '-U',
      'postgres',
      '--no-sync',
    ]);
    const server = new PrivatePostgres(dir, bin, await freePort());
    await server.restart();
    return server;
  }

  /** Starts it (again), and waits until it answers. */
  async restart(): Promise<void> {
    await asPostgres(path.join(this.bin, 'pg_ctl'), [
      '-D',
      path.join(this.dir, 'data'),
      '-l',
      path.join(this.dir, 'log'),
      '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c max_connections=200`,
      '-w',
      'start',
    ]);
  }

  /** Crashes it: every server process quits at once, without a checkpoint; a restart recovers from the WAL. */
  async crash(): Promise<void> {
    await asPostgres(path.join(this.bin, 'pg_ctl'), ['-D', path.join(this.dir, 'data'), '-m', 'immediate', 'stop']);
  }

  async stop(): Promise<void> {
    await asPostgres(path.join(this.bin, 'pg_ctl'), ['-D', path.join(this.dir, 'data'), '-m', 'fast', 'stop']).catch(
      () => undefined,
    );
    await rm(this.dir, { recursive: true, force: true });
  }

  /** A client on it, for the test's own queries. */
  async client(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }
}

async function postgresIds(): Promise<[number, number]> {
  const { stdout } = await run('id', ['-u', 'postgres']);
  const { stdout: group } = await run('id', ['-g', 'postgres']);
  return [Number(stdout.trim()), Number(group.trim())];
}

/**
 * A Redis server of the test's own that keeps its data in an append-only file written with an
 * fsync per write, so that a kill loses nothing it answered.
 */
export class PrivateRedis {
  private child: ChildProcess | null = null;

  private constructor(
    private readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const server = new PrivateRedis(await mkdtemp(path.join(tmpdir(), 'impact-private-redis-')), await freePort());
    await server.restart();
    return server;
  }

  async restart(): Promise<void> {
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'yes',
      ].concat(['--appendfsync', 'always', '--logfile', path.join(this.dir, 'log')]),
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    while (!(await redisAnswers(this.url))) {
      if (Date.now() > deadline) throw new Error('the private Redis did not start');
      await sleep(20);
    }
  }

  /** SIGKILL: it dies as it stands. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.child = null;
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A small tmpfs of the test's own: a disk that can be filled up, and freed again. */
export class SmallDisk {
  private readonly filler: string;

  private constructor(readonly dir: string) {
    this.filler = path.join(dir, 'filler');
  }

  static async mount(megabytes: number): Promise<SmallDisk> {
    const dir = await mkdtemp(path.join(tmpdir(), 'impact-small-disk-'));
    await run('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m`, 'tmpfs', dir]);
    return new SmallDisk(dir);
  }

  /** Writes a file until the disk is full, to the last byte. */
  async fill(): Promise<void> {
    const file = await open(this.filler, 'a');
    try {
      for (const size of [64 * 1024, 4096, 512, 1]) {
        const chunk = Buffer.alloc(size, 1);
        try {
          for (;;) await file.write(chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
        }
      }
    } finally {
      await file.close();
    }
  }

  async free(): Promise<void> {
    await unlink(this.filler).catch(() => undefined);
  }

  async unmount(): Promise<void> {
    await run('umount', [this.dir]).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
