import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import Redis from 'ioredis';
import pg from 'pg';
import {
  MemoryStore,
  PostgresStore,
  RedisStore,
  SqliteStore,
  type ActionEvent,
  type ActionState,
  type JournalRecord,
  type PgClient,
  type PostbackStore,
  type StoreClaim,
} from '../../lib';
import { changeOf, HostLedger, type LedgerEntry } from '../harness/host-ledger';
import { createTestSchema, DATABASE_URL, REDIS_URL } from '../helpers/services';

export const STORE_NAMES = ['memory', 'sqlite', 'redis', 'postgres'] as const;
export type StoreName = (typeof STORE_NAMES)[number];

/** Leases short enough that a dead process's claims lapse within a run, renewed every third. */
export const LEASE_MS = 1000;
const LOCK_TIMEOUT_MS = 400;

/** One process's store on the run's shared data. */
export interface ProcessStore {
  readonly store: PostbackStore<unknown>;
  /** For claims that are transactions: cuts a claim's connection, so that it is rolled back. */
  readonly loseConnection?: (claim: StoreClaim<unknown>) => Promise<void>;
  /** What the process's death does to its connections: cut (PostgreSQL rolls back what was open). */
  crash(): Promise<void>;
  /** Closes what is left. */
  dispose(): Promise<void>;
}

/** The host's ledger: what listeners credited, in the order they wrote it. */
export interface Ledger {
  write(
    event: ActionEvent,
    ctx: { previous: ActionState | null; idempotencyKey?: string; transaction: unknown },
  ): Promise<void> | void;
  entries(): Promise<readonly LedgerEntry[]>;
}

/** The data of one run that every process shares, and ways to read it directly. */
export interface Backend {
  readonly name: StoreName;
  /** Processes that can share the data (MemoryStore: one). */
  readonly processes: number;
  /** Whether a process may die and another find what it recorded. */
  readonly durable: boolean;
  /** Whether it keeps an inbox. */
  readonly inbox: boolean;
  readonly ledger: Ledger;
  open(label: string): Promise<ProcessStore>;
  /** Whether each key is recorded as handled. */
  handled(keys: readonly string[]): Promise<boolean[]>;
  journal(subjects: readonly string[]): Promise<readonly (JournalRecord | null)[]>;
  dispose(): Promise<void>;
}

function memoryLedger(): Ledger {
  const ledger = new HostLedger();
  return { write: (event, ctx) => void ledger.apply(event, ctx), entries: async () => ledger.entries };
}

async function memoryBackend(): Promise<Backend> {
  const store = new MemoryStore({ leaseMs: LEASE_MS });
  return {
    name: 'memory',
    processes: 1,
    durable: false,
    inbox: false,
    ledger: memoryLedger(),
    open: async () => ({ store, crash: async () => undefined, dispose: async () => undefined }),
    handled: async (keys) =>
      keys.map((key) => {
        const found = store.begin(key, null);
        if (typeof found === 'object') void found.release('failed');
        return found === 'handled';
      }),
    journal: async (subjects) => store.readJournal(subjects),
    dispose: async () => undefined,
  };
}

async function sqliteBackend(): Promise<Backend> {
  const dir = await mkdtemp(path.join(tmpdir(), 'impact-explore-'));
  const file = path.join(dir, 'postbacks.db');
  // The tables, made before any process opens the file.
  new SqliteStore({ path: file }).close();
  const reader = new Database(file, { readonly: true });
  reader.pragma('busy_timeout = 5000');
  const keyState = reader.prepare('SELECT state FROM postback_keys WHERE key = ?');
  const record = reader.prepare('SELECT record FROM postback_journal WHERE subject = ?');
  return {
    name: 'sqlite',
    processes: 2,
    durable: true,
    inbox: true,
    ledger: memoryLedger(),
    open: async () => {
      const store = new SqliteStore({
        path: file,
        leaseMs: LEASE_MS,
        inboxLeaseMs: LEASE_MS,
        lockTimeoutMs: LOCK_TIMEOUT_MS,
      });
      return {
        store,
        // better-sqlite3 holds no open transaction between calls: a dead process leaves its holds
        // and leases behind, as a crash does, and its connections go with it.
        crash: async () => undefined,
        dispose: async () => {
          try {
            store.close();
          } catch {
            // Closed already.
          }
        },
      };
    },
    handled: async (keys) => keys.map((key) => (keyState.get(key) as { state: number } | undefined)?.state === 1),
    journal: async (subjects) =>
      subjects.map((subject) => {
        const row = record.get(subject) as { record: string | null } | undefined;
        return row?.record == null ? null : (JSON.parse(row.record) as JournalRecord);
      }),
    dispose: async () => {
      reader.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function redisBackend(): Promise<Backend> {
  const keyPrefix = `explore:${randomUUID()}:`;
  const reader = new Redis(REDIS_URL, { lazyConnect: true });
  reader.on('error', () => undefined);
  await reader.connect();
  return {
    name: 'redis',
    processes: 2,
    durable: true,
    inbox: false,
    ledger: memoryLedger(),
    open: async () => {
      // The store's own connection settings, on a client of the run's, so that a crash can cut it.
      const client = new Redis(REDIS_URL, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: 1000,
        connectTimeout: 1000,
        enableAutoPipelining: true,
        lazyConnect: true,
      });
      client.on('error', () => undefined);
      await client.connect();
      const store = new RedisStore({
        client,
        keyPrefix,
        leaseMs: LEASE_MS,
        lockTimeoutMs: LOCK_TIMEOUT_MS,
        commandTimeoutMs: 1000,
      });
      return {
        store,
        crash: async () => {
          client.disconnect();
        },
        dispose: async () => {
          client.disconnect();
        },
      };
    },
    handled: async (keys) => {
      if (keys.length === 0) return [];
      const states = await reader.mget(...keys.map((key) => keyPrefix + key));
      return states.map((state) => state === 'handled');
    },
    journal: async (subjects) => {
      if (subjects.length === 0) return [];
      const records = await reader.mget(...subjects.map((subject) => `${keyPrefix}journal:${subject}`));
      return records.map((text) => (text === null ? null : (JSON.parse(text) as JournalRecord)));
    },
    dispose: async () => {
      let cursor = '0';
      do {
        const [next, keys] = await reader.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1000);
        if (keys.length > 0) await reader.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      reader.disconnect();
    },
  };
}

async function postgresBackend(): Promise<Backend> {
  const schema = await createTestSchema();
  const ledgerTable = `"${schema.name}".ledger`;
  await schema.pool.query(`CREATE TABLE ${ledgerTable} (
    seq bigserial PRIMARY KEY, key text NOT NULL, action_id text NOT NULL, cents integer NOT NULL,
    from_state text NOT NULL, to_state text NOT NULL, trigger text NOT NULL)`);
  const keysTable = `"${schema.name}".impact_postbacks_keys`;
  const journalTable = `"${schema.name}".impact_postbacks_journal`;
  return {
    name: 'postgres',
    processes: 2,
    durable: true,
    inbox: true,
    ledger: {
      // Written in the postback's own transaction: no key of the host's is needed for exactly-once.
      write: async (event, ctx) => {
        const change = changeOf(event, ctx.previous);
        await (ctx.transaction as PgClient).query(
          `INSERT INTO ${ledgerTable} (key, action_id, cents, from_state, to_state, trigger) VALUES ($1, $2, $3, $4, $5, $6)`,
          [ctx.idempotencyKey ?? event.meta.key, event.actionId, change.cents, change.from, change.to, event.trigger],
        );
      },
      entries: async () => {
        const { rows } = await schema.pool.query(
          `SELECT key, action_id, cents, from_state, to_state, trigger FROM ${ledgerTable} ORDER BY seq`,
        );
        return (
          rows as {
            key: string;
            action_id: string;
            cents: number;
            from_state: string;
            to_state: string;
            trigger: ActionEvent['trigger'];
          }[]
        ).map((row) => ({
          key: row.key,
          actionId: row.action_id,
          cents: row.cents,
          from: row.from_state,
          to: row.to_state,
          trigger: row.trigger,
        }));
      },
    },
    open: async (label) => {
      // Connections a lost-connection fault cut stay checked out (the router gave them up): room for them.
      const pool = new pg.Pool({
        connectionString: DATABASE_URL,
        application_name: label,
        max: 40,
        connectionTimeoutMillis: 3000,
      });
      pool.on('error', () => undefined);
      // A process's death cuts every connection it has, those still being opened included: a
      // claim in flight when it died may connect afterwards, and must not outlive it.
      let dead = false;
      const cut = (pid: number | null | undefined): void => {
        if (typeof pid === 'number') {
          schema.pool.query('SELECT pg_terminate_backend($1::int)', [pid]).catch(() => undefined);
        }
      };
      pool.on('connect', (client) => {
        if (dead) cut((client as { processID?: number | null }).processID);
      });
      const store = new PostgresStore({ pool, schema: schema.name, lockTimeoutMs: LOCK_TIMEOUT_MS });
      return {
        store,
        loseConnection: async (claim) => {
          const pid = (claim.transaction as { processID?: number | null }).processID;
          if (typeof pid === 'number') await schema.pool.query('SELECT pg_terminate_backend($1::int, 1000)', [pid]);
        },
        crash: async () => {
          dead = true;
          await schema.pool.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
            [label],
          );
        },
        dispose: async () => {
          await bounded(store.close(), 1000);
          await bounded(pool.end(), 1000);
        },
      };
    },
    handled: async (keys) => {
      const exists = await schema.pool.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [keysTable]);
      if (!(exists.rows[0] as { ok: boolean }).ok) return keys.map(() => false);
      const { rows } = await schema.pool.query(`SELECT key FROM ${keysTable} WHERE key = ANY ($1)`, [keys]);
      const found = new Set((rows as { key: string }[]).map((row) => row.key));
      return keys.map((key) => found.has(key));
    },
    journal: async (subjects) => {
      const exists = await schema.pool.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [journalTable]);
      if (!(exists.rows[0] as { ok: boolean }).ok) return subjects.map(() => null);
      const { rows } = await schema.pool.query(`SELECT subject, state FROM ${journalTable} WHERE subject = ANY ($1)`, [
        subjects,
      ]);
      const found = new Map(
        (rows as { subject: string; state: JournalRecord }[]).map((row) => [row.subject, row.state]),
      );
      return subjects.map((subject) => found.get(subject) ?? null);
    },
    dispose: async () => {
      await schema.pool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'explore-%' AND pid <> pg_backend_pid() AND query LIKE '%${schema.name}%'`,
      );
      await schema.drop();
    },
  };
}

async function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

export function createBackend(name: StoreName): Promise<Backend> {
  switch (name) {
    case 'memory':
      return memoryBackend();
    case 'sqlite':
      return sqliteBackend();
    case 'redis':
      return redisBackend();
    case 'postgres':
      return postgresBackend();
  }
}
