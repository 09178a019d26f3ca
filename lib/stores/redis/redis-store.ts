import { RedisHistory } from './redis-history';
import { randomUUID } from 'node:crypto';
import { loadOptionalModule, positiveInteger } from '../optional-module';
import { ClaimLostError } from '../claim-lost';
import { BUSY, retryWhileBusy } from '../retry-while-busy';
import type { BeginResult, JournalReadResult, JournalRecord, PostbackStore, StoreClaim } from '../store';

/**
 * The ioredis calls this store makes; any ioredis 5 or 6 client fits. A client of yours keeps its
 * own settings: the store's own connection has `enableAutoPipelining`, which is worth setting.
 */
export interface RedisClientLike {
  eval(script: string, numberOfKeys: number, ...args: (string | number)[]): Promise<unknown>;
  quit(): Promise<unknown>;
}

interface StoreSettings {
  /** Prefix of every key. Default `impact-postbacks:`. */
  readonly keyPrefix?: string;
  /** How long a claim holds before another process may take it over, in ms. Default 60 s. */
  readonly leaseMs?: number;
  /** How long a handled key and a journal record are kept, in ms. Default 90 days. */
  readonly retentionMs?: number;
  /** How long a postback waits for another process holding its action, in ms. Default 5,000. */
  readonly lockTimeoutMs?: number;
  /** A Redis call slower than this fails (the router answers 503), in ms. Default 2,000. */
  readonly commandTimeoutMs?: number;
  /** History entries kept at most (about: the stream is trimmed by whole nodes). Default 10,000. */
  readonly historyEntries?: number;
}

export type RedisStoreOptions =
  | (StoreSettings & { readonly url: string; readonly client?: never })
  | (StoreSettings & { readonly client: RedisClientLike; readonly url?: never });

/** What this store needs of a client it opened itself, to wait for its connection. */
interface OwnedClient extends RedisClientLike {
  readonly status: string;
  once(event: 'ready', listener: () => void): unknown;
  on(event: 'error', listener: () => void): unknown;
  disconnect(): void;
}

type RedisConstructor = new (url: string, options: Record<string, unknown>) => OwnedClient;

// One atomic claim: the key with a lease (SET NX PX), and the subject with the same token and
// lease, unless it is held; then the subject's journal record. KEYS: the dedupe key, and with a
// subject its lock and its record. ARGV: token, lease.
const BEGIN = `
local state = redis.call('GET', KEYS[1])
if state == 'handled' then return {'handled'} end
if state then return {'in-flight'} end
if #KEYS == 3 and not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {'${BUSY}'} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if #KEYS == 3 then
  local record = redis.call('GET', KEYS[3])
  if record then return {'claimed', record} end
end
return {'claimed'}
`;

// Fenced: writes only while this claim holds its subject (or, without one, its key), or while
// nobody does and the record is still the one the claim read (ARGV[4]): a claim whose lease
// lapsed and was taken over writes nothing ('lost'). A key already handled is a commit made
// before whose answer was lost ('done'). Then the key handled for the retention, the record (if
// any) kept as long, and the hold given up. ARGV: token, retention, record or '', the record
// read or ''.
const COMMIT = `
if redis.call('GET', KEYS[1]) == 'handled' then return 'done' end
local owner = redis.call('GET', KEYS[#KEYS == 3 and 2 or 1])
if owner ~= ARGV[1] then
  if owner then return 'lost' end
  if #KEYS == 3 and (redis.call('GET', KEYS[3]) or '') ~= ARGV[4] then return 'lost' end
end
redis.call('SET', KEYS[1], 'handled', 'PX', ARGV[2])
if #KEYS == 3 then
  if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2]) end
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
end
return 'ok'
`;

// Gives up only this claim's own key and subject: after a lease ran out another process may
// hold them. ARGV: token.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if #KEYS == 3 and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
`;

// Extends this claim's lease on its key and subject; 0 when it no longer holds them. ARGV:
// token, lease.
const RENEW = `
for index = 1, math.min(#KEYS, 2) do
  if redis.call('GET', KEYS[index]) ~= ARGV[1] then return 0 end
end
for index = 1, math.min(#KEYS, 2) do redis.call('PEXPIRE', KEYS[index], ARGV[2]) end
return 1
`;

// The journal records of the subjects, read without taking anything. KEYS: their records.
const READ_JOURNAL = `return redis.call('MGET', unpack(KEYS))`;

/** Runs one of the store's scripts on its keys, connected and bounded by the command timeout. */
type RunScript = (script: string, keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

class RedisClaim implements StoreClaim<undefined> {
  readonly transaction = undefined;
  readonly transactional = false;
  readonly previous: JournalRecord | null;

  constructor(
    private readonly run: RunScript,
    private readonly retentionMs: number,
    private readonly keys: readonly string[],
    private readonly token: string,
    /** The subject's record as the claim read it (JSON), or ''. */
    private readonly readText: string,
    readonly leaseMs: number,
  ) {
    this.previous = readText === '' ? null : (JSON.parse(readText) as JournalRecord);
  }

  async commit(record: JournalRecord | null): Promise<void> {
    const answer = await this.run(COMMIT, this.keys, [
      this.token,
      this.retentionMs,
      record === null ? '' : JSON.stringify(record),
      this.readText,
    ]);
    if (answer === 'lost') throw new ClaimLostError(`the claim of ${this.keys[1] ?? this.keys[0] ?? ''}`);
  }

  async release(): Promise<void> {
    await this.run(RELEASE, this.keys, [this.token]);
  }

  async renew(): Promise<void> {
    const held = await this.run(RENEW, this.keys, [this.token, this.leaseMs]);
    if (held !== 1) throw new ClaimLostError(`the claim of ${this.keys[1] ?? this.keys[0] ?? ''}`);
  }
}

const DAY = 24 * 60 * 60 * 1000;

/**
 * A store in Redis, shared by every instance behind a load balancer. A claim is one Lua script:
 * the key and the subject (the action) taken with a lease (`SET NX PX`), so a claim held by a
 * process that died is taken over once the lease runs out, and the subject's journal record
 * read; a commit keeps the key and the record for the retention. A Redis that is down or slow
 * makes calls fail quickly, and the router answers 503 so impact.com retries. Keep the lease
 * longer than the router's listenerTimeout and than your listeners ever take.
 *
 * Keys: `<prefix><route>:<digest>` per postback, `<prefix>journal:<subject>` per action or
 * inquiry, and `<prefix>lock:<subject>` while one is being handled.
 */
export class RedisStore implements PostbackStore {
  readonly keyPrefix: string;
  readonly leaseMs: number;
  readonly retentionMs: number;
  readonly lockTimeoutMs: number;
  readonly commandTimeoutMs: number;
  /** History (option `history` of the router): a capped stream, `<prefix>history`. */
  readonly history: RedisHistory;
  private readonly client: RedisClientLike;
  private readonly owned: OwnedClient | null;
  private ready: Promise<void> | null = null;

  constructor(options: RedisStoreOptions) {
    this.keyPrefix = options.keyPrefix ?? 'impact-postbacks:';
    this.leaseMs = positiveInteger('leaseMs', options.leaseMs ?? 60_000);
    this.retentionMs = positiveInteger('retentionMs', options.retentionMs ?? 90 * DAY);
    this.lockTimeoutMs = positiveInteger('lockTimeoutMs', options.lockTimeoutMs ?? 5000);
    this.commandTimeoutMs = positiveInteger('commandTimeoutMs', options.commandTimeoutMs ?? 2000);
    this.history = new RedisHistory(
      (script, keys, args) => this.run(script, keys, args),
      `${this.keyPrefix}history`,
      positiveInteger('historyEntries', options.historyEntries ?? 10_000),
    );
    if (options.client !== undefined) {
      this.client = options.client;
      this.owned = null;
    } else if (typeof options.url === 'string') {
      const module = loadOptionalModule('ioredis', 'RedisStore', 'ioredis') as {
        default?: RedisConstructor;
      } & RedisConstructor;
      const Redis = module.default ?? module;
      // Fail fast instead of queueing while disconnected: the router answers 503 and
      // impact.com retries, rather than requests piling up behind a dead Redis.
      const client = new Redis(options.url, {
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: this.commandTimeoutMs,
        connectTimeout: this.commandTimeoutMs,
        // The claims and commits of postbacks handled in the same turn of the event loop go to
        // Redis in one write: 9% to 20% more postbacks a second in three of four A/B runs.
        enableAutoPipelining: true,
      });
      // Connection errors surface as failed calls (and 503s); the event itself must not crash.
      client.on('error', () => undefined);
      this.client = client;
      this.owned = client;
    } else {
      throw new TypeError('RedisStore needs option url (such as "redis://127.0.0.1:6379") or option client');
    }
  }

  async begin(key: string, subject: string | null): Promise<BeginResult<undefined>> {
    const keys =
      subject === null
        ? [this.keyPrefix + key]
        : [this.keyPrefix + key, `${this.keyPrefix}lock:${subject}`, `${this.keyPrefix}journal:${subject}`];
    const token = `in-flight:${randomUUID()}`;
    const attempt = async (): Promise<BeginResult<undefined> | typeof BUSY> => {
      const answer = await this.run(BEGIN, keys, [token, this.leaseMs]);
      const [state, record] = Array.isArray(answer) ? (answer as unknown[]) : [];
      if (state === 'claimed') {
        return new RedisClaim(
          this.run,
          this.retentionMs,
          keys,
          token,
          typeof record === 'string' ? record : '',
          this.leaseMs,
        );
      }
      if (state === 'handled' || state === 'in-flight' || state === BUSY) return state;
      throw new Error(`unexpected answer from Redis: ${String(answer)}`);
    };
    const first = await attempt();
    return first === BUSY ? retryWhileBusy(attempt, this.lockTimeoutMs) : first;
  }

  async readJournal(subjects: readonly string[]): Promise<JournalReadResult> {
    if (subjects.length === 0) return [];
    const answer = await this.run(
      READ_JOURNAL,
      subjects.map((subject) => `${this.keyPrefix}journal:${subject}`),
      [],
    );
    if (!Array.isArray(answer)) throw new Error(`unexpected answer from Redis: ${String(answer)}`);
    return subjects.map((_, index) => {
      const record: unknown = answer[index];
      return typeof record === 'string' ? (JSON.parse(record) as JournalRecord) : null;
    });
  }

  private readonly run: RunScript = async (script, keys, args) => {
    await this.connected();
    return this.call(this.client.eval(script, keys.length, ...keys, ...args));
  };

  /**
   * Closes the connection if the store opened it: QUIT, then a disconnect in any case. QUIT
   * alone fails at once while the connection is down (no offline queue), and ioredis then
   * went on reconnecting forever, its timers keeping the process alive.
   */
  async close(): Promise<void> {
    if (this.owned === null) return;
    await this.owned.quit().catch(() => undefined);
    this.owned.disconnect();
  }

  /**
   * Waits, up to the command timeout, for a connection this store opened: without an offline
   * queue a call made while connecting would fail, and the first postbacks after a start or a
   * reconnect would get needless 503s.
   */
  private async connected(): Promise<void> {
    const client = this.owned;
    if (client === null || client.status === 'ready') return;
    // One listener per connecting phase, however many calls wait on it.
    this.ready ??= new Promise<void>((resolve) => {
      client.once('ready', () => {
        this.ready = null;
        resolve();
      });
    });
    await this.call(this.ready);
  }

  /** Bounds every call, also on a client the host passed in with no timeout of its own. */
  private call<T>(pending: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`Redis did not answer within ${this.commandTimeoutMs} ms`));
      }, this.commandTimeoutMs);
    });
    return Promise.race([pending, timeout]).finally(() => {
      clearTimeout(timer);
    });
  }
}
