import { randomUUID } from 'node:crypto';
import { loadOptionalModule, positiveInteger } from './optional-module';
import type { ClaimResult, DedupeStore } from './store';

/** The ioredis calls this store makes; any ioredis 5 or 6 client fits. */
export interface RedisClientLike {
  eval(script: string, numberOfKeys: number, ...args: (string | number)[]): Promise<unknown>;
  set(key: string, value: string, expiry: 'PX', milliseconds: number): Promise<unknown>;
  quit(): Promise<unknown>;
}

interface StoreSettings {
  /** Prefix of every key. Default `impact-postbacks:`. */
  readonly keyPrefix?: string;
  /** How long a claim holds before another process may take it over, in ms. Default 60 s. */
  readonly leaseMs?: number;
  /** How long a handled key is kept, in ms. Default 90 days. */
  readonly retentionMs?: number;
  /** A Redis call slower than this fails (the router answers 503), in ms. Default 2,000. */
  readonly commandTimeoutMs?: number;
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

// Atomic claim: SET NX with a lease; if the key exists, report what it holds.
const CLAIM = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'claimed' end
if redis.call('GET', KEYS[1]) == 'handled' then return 'handled' end
return 'in-flight'
`;

// Release only our own claim: after a lease ran out another process may hold the key.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

const DAY = 24 * 60 * 60 * 1000;

/**
 * A store in Redis, shared by every instance behind a load balancer. A claim is `SET NX` with
 * a lease, so a claim held by a process that died is taken over once the lease runs out; a
 * commit keeps the key for the retention. A Redis that is down or slow makes calls fail
 * quickly, and the router answers 503 so impact.com retries. Keep the lease longer than the
 * router's listenerTimeout and than your listeners ever take.
 */
export class RedisStore implements DedupeStore {
  readonly keyPrefix: string;
  readonly leaseMs: number;
  readonly retentionMs: number;
  readonly commandTimeoutMs: number;
  private readonly client: RedisClientLike;
  private readonly owned: OwnedClient | null;
  /** The token of each claim this process holds, so it releases only its own. */
  private readonly claims = new Map<string, string>();
  private ready: Promise<void> | null = null;

  constructor(options: RedisStoreOptions) {
    this.keyPrefix = options.keyPrefix ?? 'impact-postbacks:';
    this.leaseMs = positiveInteger('leaseMs', options.leaseMs ?? 60_000);
    this.retentionMs = positiveInteger('retentionMs', options.retentionMs ?? 90 * DAY);
    this.commandTimeoutMs = positiveInteger('commandTimeoutMs', options.commandTimeoutMs ?? 2000);
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
      });
      // Connection errors surface as failed calls (and 503s); the event itself must not crash.
      client.on('error', () => undefined);
      this.client = client;
      this.owned = client;
    } else {
      throw new TypeError('RedisStore needs option url (such as "redis://127.0.0.1:6379") or option client');
    }
  }

  async claim(key: string): Promise<ClaimResult> {
    await this.connected();
    const token = `in-flight:${randomUUID()}`;
    const result = await this.call(this.client.eval(CLAIM, 1, this.keyPrefix + key, token, this.leaseMs));
    if (result === 'claimed') this.claims.set(key, token);
    if (result === 'claimed' || result === 'handled' || result === 'in-flight') return result;
    throw new Error(`unexpected answer from Redis: ${String(result)}`);
  }

  async commit(key: string): Promise<void> {
    this.claims.delete(key);
    await this.connected();
    await this.call(this.client.set(this.keyPrefix + key, 'handled', 'PX', this.retentionMs));
  }

  async release(key: string): Promise<void> {
    const token = this.claims.get(key);
    this.claims.delete(key);
    if (token === undefined) return;
    await this.connected();
    await this.call(this.client.eval(RELEASE, 1, this.keyPrefix + key, token));
  }

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
