import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemoryStore, PostgresStore, RedisStore, SqliteStore, type PostbackStore } from '../../lib';
import { createTestSchema, DATABASE_URL, REDIS_URL, requirePostgres, requireRedis, type TestSchema } from './services';

/** One of the four stores, each made new and empty for a test. */
export interface FreshStoreKind {
  readonly name: string;
  /** Runs before the suite; skips it where the service is absent. */
  readonly before?: (context: Mocha.Context) => Promise<void>;
  /** A new, empty store. */
  readonly create: () => PostbackStore<unknown>;
  readonly after?: () => Promise<void>;
}

/** The four stores for a suite; `label` names their files, key prefixes and table prefixes. */
export function freshStoreKinds(label: string): FreshStoreKind[] {
  let dir = '';
  let schema: TestSchema | undefined;
  let made = 0;
  return [
    { name: 'MemoryStore', create: () => new MemoryStore() },
    {
      name: 'SqliteStore',
      before: async () => {
        dir = await mkdtemp(path.join(tmpdir(), `impact-${label}-`));
      },
      create: () => new SqliteStore({ path: path.join(dir, `${randomUUID()}.db`) }),
      after: () => rm(dir, { recursive: true, force: true }),
    },
    {
      name: 'RedisStore',
      before: (context) => requireRedis(context),
      create: () => new RedisStore({ url: REDIS_URL, keyPrefix: `test-${label}:${randomUUID()}:` }),
    },
    {
      name: 'PostgresStore',
      before: async (context) => {
        await requirePostgres(context);
        schema = await createTestSchema();
      },
      create: () =>
        new PostgresStore({
          connectionString: DATABASE_URL,
          schema: schema?.name ?? 'public',
          tablePrefix: `${label.charAt(0)}${(made += 1)}_`,
        }),
      after: async () => schema?.drop(),
    },
  ];
}
