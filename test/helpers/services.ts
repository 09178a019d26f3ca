import { randomUUID } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';

export const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const DATABASE_URL = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** True when something answers PING at the Redis URL within a second. */
export async function redisAnswers(url: string): Promise<boolean> {
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

/** True when PostgreSQL at DATABASE_URL answers a query within two seconds. */
async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const available = new Map<string, Promise<boolean>>();

/**
 * Skips the calling suite, with a visible message, when the service does not answer; with
 * REQUIRE_<NAME>=1 (set by .ci/run) a missing service fails instead.
 */
async function requireService(
  context: Mocha.Context,
  name: 'REDIS' | 'POSTGRES',
  variable: string,
  url: string,
  answers: (url: string) => Promise<boolean>,
): Promise<void> {
  let probe = available.get(name);
  if (probe === undefined) {
    probe = answers(url);
    available.set(name, probe);
  }
  if (await probe) return;
  const message = `no ${name === 'REDIS' ? 'Redis' : 'PostgreSQL'} answers at ${url} (set ${variable})`;
  if (process.env[`REQUIRE_${name}`] === '1') {
    throw new Error(`${message}, and REQUIRE_${name}=1 makes that a failure`);
  }
  console.log(`    SKIPPED: ${message}; REQUIRE_${name}=1 turns this skip into a failure`);
  context.skip();
}

export async function requireRedis(context: Mocha.Context): Promise<void> {
  await requireService(context, 'REDIS', 'REDIS_URL', REDIS_URL, redisAnswers);
}

export async function requirePostgres(context: Mocha.Context): Promise<void> {
  await requireService(context, 'POSTGRES', 'DATABASE_URL', DATABASE_URL, postgresAnswers);
}

/** A schema of its own for one test or suite, dropped with everything in it by `drop`. */
export interface TestSchema {
  readonly name: string;
  /** A pool on the test database, for the test's own queries; ended by `drop`. */
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

/** PostgreSQL's SQLSTATE for a transaction chosen as a deadlock's victim. */
const DEADLOCK_DETECTED = '40P01';

export async function createTestSchema(): Promise<TestSchema> {
  const name = `test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  pool.on('error', () => undefined);
  await pool.query(`CREATE SCHEMA "${name}"`);
  return {
    name,
    pool,
    drop: async () => {
      // A store's backend whose client a test cut off (a proxy taken down) may still hold locks
      // when the schema goes: PostgreSQL then picks one side of the deadlock to fail, and the
      // drop, if chosen, is tried again once that backend is gone.
      for (let attempt = 1; ; attempt += 1) {
        try {
          await pool.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
          break;
        } catch (error) {
          if ((error as { code?: unknown }).code !== DEADLOCK_DETECTED || attempt === 3) throw error;
        }
      }
      await pool.end();
    },
  };
}

/**
 * For a describe block on PostgreSQL: skips it (visibly) when no PostgreSQL answers, or fails
 * under REQUIRE_POSTGRES=1, and gives each test a schema of its own, dropped after it. Register
 * hooks that close stores before calling this: mocha runs afterEach hooks in the order given,
 * and a schema cannot be dropped under an open transaction.
 */
export function useTestSchema(): () => TestSchema {
  let schema: TestSchema | undefined;
  before(async function () {
    await requirePostgres(this);
  });
  beforeEach(async () => {
    schema = await createTestSchema();
  });
  afterEach(async () => {
    await schema?.drop();
    schema = undefined;
  });
  return () => {
    if (schema === undefined) throw new Error('no test schema outside a test');
    return schema;
  };
}
