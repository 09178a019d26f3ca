import type { EventEmitter } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { PostbackError, routerClosed } from '../errors';
import type { PostbackEvent } from '../events';
import { inboxEntryOf } from '../fields/stored-event';
import type {
  CommitOutcome,
  InboxClaim,
  InboxQuery,
  InboxRow,
  InboxStats,
  InboxStatus,
  StoreInbox,
} from '../stores/store';
import {
  createClaimApplier,
  DELIVERED,
  DUPLICATE,
  failed,
  Pending,
  TIMED_OUT,
  type DeliveryOutcome,
  type DeliverySettings,
  type Maybe,
} from './apply-claim';
import { isThenable, withTimeout } from './call-listeners';
import { runAround } from './run-around';
import { callStore } from './store-call';
import type { ClaimUnits } from './claim-unit';

export interface InboxSettings extends DeliverySettings {
  /** Attempts after which a row is dead. */
  readonly maxAttempts: number;
  /** The wait before attempt n + 1 is baseMs × 2^(n − 1), at most maxMs, less up to half of it. */
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  /** How many rows are delivered at once. */
  readonly concurrency: number;
}

/** A row of the inbox as `postbacks.inbox.list()` shows it. */
export interface InboxItem {
  readonly id: number;
  readonly status: InboxStatus;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly receivedAt: Date;
  readonly nextAttemptAt: Date;
  readonly deliveredAt: Date | null;
  readonly outcome: CommitOutcome | null;
  /** The event its listeners get, or null if it cannot be built again (lastError says why). */
  readonly event: PostbackEvent | null;
}

/** Looking into the inbox and repairing it: `postbacks.inbox`. */
export interface PostbackInbox {
  stats(): Promise<InboxStats>;
  /** Rows, newest first: all, or those of one status; at most `limit` (default 50). */
  list(query?: InboxQuery): Promise<InboxItem[]>;
  /**
   * Makes a row, or every dead row, pending again with its attempts reset; gives how many. A row
   * being delivered at that moment is left to that delivery (PostgreSQL waits for it to end).
   */
  retry(target: number | { readonly status: 'dead' }): Promise<number>;
}

export interface InboxDelivery {
  /**
   * Stores an arriving postback with its key: delivered (stored, to be delivered), a duplicate
   * (there already), or failed (503) when the store fails or does not answer within the
   * listener timeout.
   */
  arrive(event: PostbackEvent): Maybe<DeliveryOutcome>;
  readonly admin: PostbackInbox;
  /** Takes no more rows, and waits for those being delivered, up to `timeoutMs`. */
  stop(timeoutMs: number): Promise<void>;
}

/** One delivery as an observer sees it: run inside its span, say, and told how it ended. */
export interface ObservedDelivery {
  run<R>(work: () => R): R;
  /** Null: the delivery threw (the failure is handled and reported by the worker). */
  end(outcome: DeliveryOutcome | null): void;
}

/** Told of each delivery of a row as it begins (for history and traces). */
export type DeliveryObserver = (event: PostbackEvent) => ObservedDelivery;

const UNOBSERVED: ObservedDelivery = {
  run: (work) => work(),
  end: () => undefined,
};

/**
 * Begins observing a delivery. Whatever the observer does, a delivery is made or not as if
 * nobody watched: a throw here or in `end` must never reach the worker's failure handling, which
 * would count a delivered row as failed.
 */
function observe(observer: DeliveryObserver | null, event: PostbackEvent): ObservedDelivery {
  if (observer === null) return UNOBSERVED;
  let observed: ObservedDelivery;
  try {
    observed = observer(event);
  } catch {
    return UNOBSERVED;
  }
  return {
    // Whatever the observer's run does around it, the delivery runs once, and counts as run.
    run: (work) => runAround((inner) => observed.run(inner), work, reportedByObserver),
    end: (outcome) => {
      try {
        observed.end(outcome);
      } catch {
        // Reported by the observer itself (history and telemetry report their own failures).
      }
    },
  };
}

/** How long the worker sleeps between looks when nothing wakes it, in ms. */
const POLL_MS = 1000;

/**
 * Inbox delivery: a postback is stored on arrival and answered at once; a worker in each router
 * process then takes stored rows and delivers them as direct delivery does (the claim applier:
 * listeners with `(event, ctx)`, the ordering rule, commit or release). A row whose delivery
 * fails is tried again after a backoff with jitter, and is dead after `maxAttempts`; `error` is
 * emitted for each failure (by the applier), `dead` once with the event and its last error.
 */
export function createInboxDelivery<T>(
  emitter: EventEmitter,
  inbox: StoreInbox<T>,
  settings: InboxSettings,
  reportError: (error: PostbackError) => void,
  units: ClaimUnits,
  notify: (eventName: 'dead', args: readonly unknown[]) => void,
  rebuild: (row: InboxRow) => PostbackEvent,
  eventNameOf: (event: PostbackEvent) => string,
  /** Told of each delivery as it begins and as it ends. Null: nobody is told. */
  observer: DeliveryObserver | null,
): InboxDelivery {
  const apply = createClaimApplier<T>(emitter, settings, reportError, units);
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  /** Read by the worker between its awaits; stop() sets it. */
  const running = (): boolean => !stopped;
  let kick: (() => void) | null = null;
  /** No row is taken before this time (performance.now()): the store failed to count or record an attempt. */
  let pausedUntil = 0;
  /** A row taken again at once would fail again at once: the worker waits as after a failed read. */
  const pauseTakes = (): void => {
    pausedUntil = performance.now() + POLL_MS;
  };
  const wakeWorker = (): void => {
    kick?.();
  };

  function delayBefore(attempt: number): number {
    const { baseMs, maxMs } = settings.backoff;
    const full = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 52));
    // Half of it at random: rows that failed together are not all tried again together.
    return Math.round(full / 2 + (Math.random() * full) / 2);
  }

  /**
   * Delivers one row as the claim applier does (which renews its lease meanwhile), then records
   * a failed attempt: due again after the backoff, or dead. A delivery given up because the
   * router closes is not an attempt: the row is given back, and delivered again.
   */
  async function deliverRow(claim: InboxClaim<T>): Promise<void> {
    const { row } = claim;
    if (row.attempts >= settings.maxAttempts) return giveUp(claim);
    try {
      await callStore(() => claim.start?.());
    } catch (cause) {
      reportError(
        new PostbackError('store.failed', `the inbox could not count an attempt of row ${row.id}; trying again`, {
          cause,
        }),
      );
      await callStore(() => (claim.giveBack === undefined ? claim.release('failed') : claim.giveBack())).catch(
        ignoreFailure,
      );
      pauseTakes();
      return;
    }
    if (!running()) {
      // stop() came while the attempt was counted: nothing new is begun; the count is given back.
      await callStore(() => claim.giveBack?.()).catch(ignoreFailure);
      return;
    }
    let event: PostbackEvent | null = null;
    let error: PostbackError;
    try {
      event = rebuild(row);
      const rowEvent = event;
      const observed = observe(observer, rowEvent);
      let outcome: DeliveryOutcome | null = null;
      try {
        const result = observed.run(() => apply(claim, eventNameOf(rowEvent), rowEvent));
        outcome = result instanceof Pending ? await result.ended : result;
      } finally {
        observed.end(outcome);
      }
      if (outcome.kind !== 'failed') return;
      if (outcome.error.code === 'router.closed') {
        try {
          await claim.giveBack?.();
        } catch {
          // The store is closing too: the row waits for its lease, if any, to lapse.
        }
        return;
      }
      error = outcome.error;
    } catch (caught) {
      // The row no longer builds an event (or the store failed outside the applier's care).
      error =
        caught instanceof PostbackError
          ? caught
          : new PostbackError('internal', `inbox row ${row.id} could not be delivered`, { cause: caught });
      reportError(error);
      if (event === null) await callStore(() => claim.release('failed')).catch(ignoreFailure);
    }
    const attempt = row.attempts + 1;
    const dead = attempt >= settings.maxAttempts;
    let recorded: boolean;
    try {
      recorded = await claim.recordFailure(error.message, dead ? null : delayBefore(attempt));
    } catch (cause) {
      reportError(
        new PostbackError('store.failed', `the inbox failed to record a failed delivery of row ${row.id}`, { cause }),
      );
      pauseTakes();
      return;
    }
    // Not recorded: another worker had the row by then, and counts its own attempt.
    if (dead && recorded) notify('dead', [event ?? null, error]);
  }

  /**
   * A row whose attempts all began already, the last one never ended as far as the store knows
   * (the process died during it, or its failure could not be recorded; a store whose claims
   * `start` counts such an attempt): dead, its listeners not run again.
   */
  async function giveUp(claim: InboxClaim<T>): Promise<void> {
    const { row } = claim;
    let event: PostbackEvent | null = null;
    try {
      event = rebuild(row);
    } catch {
      // Announced as null, as a row that no longer builds an event is.
    }
    // Its last error, if any, is kept in the message: the row's record of it is replaced.
    const error = new PostbackError(
      'listener.failed',
      `inbox row ${row.id} has begun ${row.attempts} attempts (maxAttempts: ${settings.maxAttempts}); the last ` +
        `error recorded: ${row.lastError ?? 'none (an attempt was cut short, as when the process dies during it)'}`,
    );
    reportError(error);
    let recorded: boolean;
    try {
      recorded = await callStore(() => claim.recordFailure(error.message, null));
    } catch (cause) {
      reportError(
        new PostbackError('store.failed', `the inbox failed to record that row ${row.id} is dead`, { cause }),
      );
      pauseTakes();
      return;
    }
    if (recorded) notify('dead', [event, error]);
  }

  async function work(): Promise<void> {
    // Listeners registered right after createPostbackRouter are in place before the first row.
    await nextTurn();
    while (running()) {
      while (running() && inFlight.size < settings.concurrency && performance.now() >= pausedUntil) {
        let claim: InboxClaim<T> | null;
        try {
          claim = await inbox.next();
        } catch (cause) {
          // The store closes as stop() times out: nothing to report.
          if (running()) {
            reportError(new PostbackError('store.failed', 'the inbox could not be read; trying again', { cause }));
          }
          break;
        }
        if (claim === null) break;
        if (!running()) {
          // Taken while stop() ran: stop() waits for no delivery begun now, and the store closes.
          await callStore(() => claim.giveBack?.()).catch(ignoreFailure);
          break;
        }
        const delivery = deliverRow(claim).finally(() => {
          inFlight.delete(delivery);
          wakeWorker();
        });
        inFlight.add(delivery);
      }
      if (!running()) break;
      const kicked = new Promise<void>((resolve) => {
        kick = resolve;
      });
      await Promise.race([kicked, waitForWork(kicked)]);
      kick = null;
    }
  }

  /** The store's wait for new rows. One that fails is reported, and the worker looks again after POLL_MS. */
  function waitForWork(kicked: Promise<void>): Promise<void> {
    return callStore(() => inbox.waitForWork(POLL_MS)).catch((cause: unknown) => {
      reportError(new PostbackError('store.failed', 'the inbox could not wait for new rows; looking again', { cause }));
      return withTimeout(kicked, POLL_MS, undefined);
    });
  }
  const worker = work();

  function arrived(result: 'stored' | 'duplicate' | typeof TIMED_OUT): DeliveryOutcome {
    if (result === TIMED_OUT)
      return storeFailed(new Error(`the inbox did not answer within ${settings.listenerTimeout} ms`));
    if (result === 'duplicate') return DUPLICATE;
    wakeWorker();
    return DELIVERED;
  }

  function storeFailed(cause: unknown): DeliveryOutcome {
    const error = new PostbackError('store.failed', 'the postback could not be stored; retry later', { cause });
    reportError(error);
    return failed(error);
  }

  return {
    arrive(event) {
      // A postback whose body came in once close() had started: as direct delivery answers it.
      if (stopped) return failed(routerClosed());
      let stored: Maybe<'stored' | 'duplicate'>;
      try {
        const entry = settings.committedEntry?.(event, 'stored');
        stored = entry === undefined ? inbox.add(inboxEntryOf(event)) : inbox.add(inboxEntryOf(event), entry);
      } catch (cause) {
        return storeFailed(cause);
      }
      // Any thenable a custom store returns is waited for: 2xx means stored.
      if (!isThenable(stored)) return arrived(stored);
      // A write that completes after the 503 leaves the postback stored: impact.com's retry of
      // it is then a duplicate, answered 2xx, and it is delivered once.
      return withTimeout(Promise.resolve(stored), settings.listenerTimeout, TIMED_OUT).then(arrived, storeFailed);
    },
    admin: {
      stats: () => inbox.stats(),
      list: async (query) =>
        (await inbox.list(query)).map((row) => {
          let event: PostbackEvent | null = null;
          try {
            event = rebuild(row);
          } catch {
            // Shown as null; a delivery of it fails and records why.
          }
          return {
            id: row.id,
            status: row.status,
            attempts: row.attempts,
            lastError: row.lastError,
            receivedAt: row.receivedAt,
            nextAttemptAt: row.nextAttemptAt,
            deliveredAt: row.deliveredAt,
            outcome: row.outcome,
            event,
          };
        }),
      retry: async (target) => {
        const count = await inbox.retry(target);
        if (count > 0) wakeWorker();
        return count;
      },
    },
    async stop(timeoutMs) {
      stopped = true;
      wakeWorker();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      });
      const drained = (async () => {
        await worker;
        // Every delivery the worker started before it stopped is in the set now.
        await Promise.all([...inFlight]);
      })();
      await Promise.race([drained, timedOut]);
      clearTimeout(timer);
    },
  };
}

function reportedByObserver(): void {
  // History and telemetry report their own failures.
}

function ignoreFailure(): void {
  // Reported by the applier already; the row's lease lapses and it is tried again.
}
