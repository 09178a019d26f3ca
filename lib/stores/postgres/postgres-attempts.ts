import type { Connection } from './postgres-claim';
import { sqlLiteral } from './postgres-literal';

/** How long the connection may sit unused before it is opened anew rather than trusted. */
const IDLE_MS = 30_000;
/** How long closing waits for the statements asked for before it (counts given back as the router closes). */
const CLOSE_WAIT_MS = 2000;

/**
 * Counts an inbox row's attempt as it begins, committed at once through a connection of its own.
 * The row's delivery transaction cannot count it: that rolls back when the process dies or the
 * delivery is cut short, and another connection cannot write the row it holds locked, so the
 * count goes in a table of its own (attempts begun per row).
 *
 * The connection is opened before a row is taken, never while one is held: were the pool full
 * of claims, each waiting for a connection to count with, none would ever get one. A count
 * finds it open or fails at once (the row is then given back, not delivered), and the next take
 * opens it again.
 */
export class AttemptCounter {
  private open: Connection | null = null;
  private opening: Promise<void> | null = null;
  private lastUsed = 0;
  private closed = false;
  /** The last statement asked for: they go one at a time, as a pg client's queries must. */
  private last: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly connect: () => Promise<Connection>,
    /** The table of attempts begun, quoted. */
    private readonly table: string,
    /** A monotonic clock in ms (tests pass their own). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Opens the connection unless it is open. */
  async ready(): Promise<void> {
    if (this.closed) throw new Error('the inbox is closed');
    // One left unused for long may have been dropped on the way (a NAT, a proxy) without a word,
    // and a count on it would wait out its bound: a fresh one costs less.
    if (this.open !== null && this.now() - this.lastUsed > IDLE_MS) this.drop(this.open);
    if (this.open !== null) return;
    this.opening ??= this.connect().then(
      (connection) => {
        this.opening = null;
        if (this.closed) {
          connection.close();
          throw new Error('the inbox is closed');
        }
        this.open = connection;
        this.lastUsed = this.now();
      },
      (error: unknown) => {
        this.opening = null;
        throw error;
      },
    );
    await this.opening;
  }

  /** Counts the attempt after `before` begun ones (or after a count that came late); answers its number. */
  count(rowId: number, before: number): Promise<number> {
    if (this.closed) return Promise.reject(new Error('the inbox is closed'));
    const id = sqlLiteral(rowId);
    // A crash of PostgreSQL itself in the instant after may lose the count (one attempt more);
    // waiting for the disk would double the inbox's fsyncs. LOCAL: nothing stays on the session.
    return this.run(
      `BEGIN; SET LOCAL synchronous_commit TO off;
      INSERT INTO ${this.table} AS a (id, started) VALUES (${id}, ${sqlLiteral(before + 1)})
        ON CONFLICT (id) DO UPDATE SET started = greatest(a.started, ${sqlLiteral(before)}) + 1 RETURNING started;
      COMMIT`,
    ).then((results) => (results[2]?.rows[0] as { started: number }).started);
  }

  /** Takes back the count of attempt `number`, unless another was counted since. */
  async uncount(rowId: number, number: number): Promise<void> {
    await this.run(
      `UPDATE ${this.table} SET started = started - 1 WHERE id = ${sqlLiteral(rowId)} AND started = ${sqlLiteral(number)}`,
    );
  }

  /**
   * Counts no more; the statements asked for before (counts given back by deliveries the router
   * gave up as it closed) go first, for up to CLOSE_WAIT_MS in all.
   */
  async close(): Promise<void> {
    this.closed = true;
    const deadline = this.now() + CLOSE_WAIT_MS;
    for (let last = null as Promise<unknown> | null; last !== this.last;) {
      last = this.last;
      const left = deadline - this.now();
      if (left <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([last, new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
    if (this.open !== null) this.drop(this.open);
  }

  private run(text: string): Promise<Awaited<ReturnType<Connection['queryAll']>>> {
    const ran = this.last.then(async () => {
      const connection = this.open;
      if (connection === null) throw new Error('the inbox has no connection to count attempts with');
      this.lastUsed = this.now();
      try {
        return await connection.queryAll(text);
      } catch (error) {
        this.drop(connection);
        throw error;
      }
    });
    this.last = ran.catch(() => undefined);
    return ran;
  }

  private drop(connection: Connection): void {
    if (this.open === connection) this.open = null;
    connection.close();
  }
}
